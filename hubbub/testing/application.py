"""Drive an ASGI application in-process, message by message."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Iterator

from asgiref.testing import ApplicationCommunicator as _BaseCommunicator

from .. import db

__all__ = ["ApplicationCommunicator", "keep_test_connections", "no_op"]


def no_op() -> None:
    """Does nothing; a stand-in where a callable is required."""


class _ConnectionKeeper:
    """Makes ``hubbub.db.close_old_connections`` a no-op while any communicator is talking to its app.

    ``database_sync_to_async`` closes stale connections around each call; inside a
    ``django.test.TestCase`` that would close the test's own connection (its transaction
    holds autocommit off), so consumers under test could not see the test's data. The
    module attribute is replaced, not the function, so a test that patches that name
    itself gets its own function back afterwards. Overlapping communicators (two apps
    driven with ``asyncio.gather``) share one replacement: the first in saves the
    attribute, the last out restores it.
    """

    def __init__(self) -> None:
        self.depth = 0
        self.saved: Any = None

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        if self.depth == 0:
            self.saved = db.close_old_connections
            db.close_old_connections = no_op
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1
            if self.depth == 0:
                db.close_old_connections = self.saved
                self.saved = None


#: ``with keep_test_connections(): ...`` - what the communicators do around each exchange.
keep_test_connections = _ConnectionKeeper()


class ApplicationCommunicator(_BaseCommunicator):
    """asgiref's communicator (the app runs as a task in a fresh context), failing fast.

    While it sends to or waits on the application, ``database_sync_to_async`` leaves
    database connections open (see ``keep_test_connections``), so consumers using the
    ORM work inside ``django.test.TestCase`` and see the test's transaction.

    ``receive_output`` returns as soon as the application sends a message or ends:
    an application that raised has its own exception re-raised at once, instead of
    the test waiting out the timeout and reporting a bare ``TimeoutError``.
    """

    _future = None  # so a subclass whose __init__ refuses its arguments is still collectable

    async def send_input(self, message: Any) -> None:
        """Give the application ``message`` (its database connections stay open meanwhile)."""
        with keep_test_connections():
            return await super().send_input(message)

    async def receive_output(self, timeout: float = 1) -> Any:
        """The application's next message (its database connections stay open meanwhile)."""
        with keep_test_connections():
            return await self._next_output(timeout)

    async def wait(self, timeout: float = 1) -> None:
        """Wait for the application to finish (its database connections stay open meanwhile)."""
        with keep_test_connections():
            return await super().wait(timeout)

    async def _next_output(self, timeout: float) -> Any:
        if self.future.done():
            self.future.result()
        if not self.output_queue.empty():
            return self._unless_crashed(self.output_queue.get_nowait())
        getter = asyncio.ensure_future(self.output_queue.get())
        try:
            done, _ = await asyncio.wait({getter, self.future}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not getter.done():
                getter.cancel()
        if getter in done:
            return self._unless_crashed(getter.result())
        if self.future.done():
            self.future.result()  # raises the application's exception, if it had one
            raise asyncio.TimeoutError("the application finished without sending another message")
        self.future.cancel()
        try:
            await self.future
        except asyncio.CancelledError:
            pass
        raise asyncio.TimeoutError(f"no message from the application within {timeout} s")

    def _unless_crashed(self, message: Any) -> Any:
        """Raise the app's exception in place of the 1011 close hubbub sends for it.

        A consumer that fails after accepting closes the socket with 1011 so real
        clients learn of the failure; tests written for Channels expect the exception
        itself from ``receive_output``, and get it.
        """
        if message.get("type") == "websocket.close" and message.get("code") == 1011 and self.future.done():
            self.future.result()
        return message

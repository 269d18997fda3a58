"""Drive an ASGI application in-process, message by message."""

from __future__ import annotations

import asyncio
from typing import Any

from asgiref.testing import ApplicationCommunicator as _BaseCommunicator

__all__ = ["ApplicationCommunicator", "no_op"]


def no_op() -> None:
    """Does nothing; a stand-in where a callable is required."""


class ApplicationCommunicator(_BaseCommunicator):
    """asgiref's communicator (the app runs as a task in a fresh context), failing fast.

    ``receive_output`` returns as soon as the application sends a message or ends:
    an application that raised has its own exception re-raised at once, instead of
    the test waiting out the timeout and reporting a bare ``TimeoutError``.
    """

    _future = None  # so a subclass whose __init__ refuses its arguments is still collectable

    async def receive_output(self, timeout: float = 1) -> Any:
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

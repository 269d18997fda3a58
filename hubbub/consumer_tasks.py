"""The tasks of one running consumer: the first to raise cancels the others and ends them all.

Theory of operation. A consumer runs in the task the server gave it (the host), which
reads ``receive``; its channel listener and any task a connection or handler starts run
beside it as plain asyncio tasks. ``async with ConsumerTasks() as tasks:`` runs its block
in the host, and leaves only when the host's block and every task beside it have ended:

- A task beside the host that raises (anything but its own cancellation) is recorded and
  cancels the others and the host, whose block then stops at the await it was in. That
  cancellation is the group's own: leaving the block swallows it (and, on Python 3.11+,
  ``uncancel``s the host, so a timeout around the consumer keeps its count).
- The host's block raising cancels the tasks beside it, and is recorded after the errors
  that came before it. The block ending normally waits for the others to end on their own.
- A cancellation from outside (the server cancelling the application) cancels the tasks
  beside it, waits for them and goes on. Cancelled from outside while ending for an error,
  the host still waits for its tasks: nothing is left running.
- A task started while the group is ending for an error is cancelled before it runs.

Recorded errors are not raised: ``tasks.errors`` lists them in the order they happened (empty:
nothing raised), and the consumer decides which one ends it, raising it outside any except
clause so its context stays its own. This is what anyio's task group did here, for a
fraction of its memory: an idle consumer holds this object and a list of one task, instead
of a cancel scope, a task group, task states and an event per task (about 3 KiB), and no
coroutine frame of its own. Nothing here runs per message.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

__all__ = ["ConsumerTasks"]


class ConsumerTasks:
    """The host task of one consumer and the tasks started beside it (see the module docstring)."""

    __slots__ = ("_host", "_children", "_errors", "_ending", "_closing", "_cancelled_host")

    def __init__(self) -> None:
        self._host: asyncio.Task[Any] | None = None
        self._children: list[asyncio.Task[Any]] = []
        self._errors: list[BaseException] | None = None
        self._ending = False  # an error happened: everything is being cancelled
        self._closing = False  # the host's body has ended: it waits for the others
        self._cancelled_host = False  # the host was cancelled by this group, not from outside

    def start_soon(self, func: Callable[..., Coroutine[Any, Any, Any]], *args: Any) -> None:
        """Run ``func(*args)`` in a task beside the host, in a copy of the current context."""
        task = asyncio.get_running_loop().create_task(func(*args))
        self._children.append(task)
        task.add_done_callback(self._child_done)
        if self._ending:
            task.cancel()

    async def __aenter__(self) -> ConsumerTasks:
        self._host = asyncio.current_task()
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any) -> bool:
        """Record how the host's block ended, then wait for the tasks beside it (see the module docstring)."""
        self._closing = True
        outside: BaseException | None = None  # a cancellation from outside, passed on once all have ended
        if isinstance(exc, asyncio.CancelledError):
            if not self._take_back():
                outside = exc
        elif exc is not None:
            self._take_back()
            self._record(exc)
        if outside is not None or self._errors is not None:
            self._cancel_children()
        while self._children:
            try:
                await asyncio.wait(list(self._children))
            except asyncio.CancelledError as cancelled:
                outside = outside or cancelled
                self._cancel_children()
        if outside is exc is not None:
            return False  # the host's cancellation goes on as it came
        if outside is not None:
            raise outside
        return True  # any other error is in ``errors``

    @property
    def errors(self) -> list[BaseException]:
        """What the host's block and the tasks beside it raised, in the order it happened."""
        return self._errors or []

    def _take_back(self) -> bool:
        """Undo this group's cancellation of the host, if any: whether the host was cancelled by it alone."""
        if not self._cancelled_host:
            return False
        self._cancelled_host = False
        uncancel = getattr(self._host, "uncancel", None)  # Python 3.11+: cancellations are counted
        return uncancel is None or uncancel() == 0  # more than one: the outside cancelled it too

    def _child_done(self, task: asyncio.Task[Any]) -> None:
        self._children.remove(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self._record(exc)

    def _record(self, exc: BaseException) -> None:
        if self._errors is None:
            self._errors = []
        self._errors.append(exc)
        if self._ending:
            return
        self._ending = True
        self._cancel_children()
        if not self._closing and self._host is not None:
            self._cancelled_host = True
            self._host.cancel()

    def _cancel_children(self) -> None:
        for task in self._children:
            task.cancel()

"""Small helpers shared by consumers and routers."""

from __future__ import annotations

import asyncio
import contextlib
import types
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from .typing import Message


def name_that_thing(thing: Any) -> str:
    """A readable dotted name for a class, function, method or instance (for logs and errors)."""
    if isinstance(thing, types.MethodType):
        return f"{name_that_thing(thing.__self__)}.{thing.__func__.__name__}"
    if (
        not isinstance(thing, (type, types.FunctionType))
        and thing.__class__ is not type
        and not hasattr(thing, "__qualname__")
    ):
        thing = thing.__class__
    module = getattr(thing, "__module__", None)
    name = getattr(thing, "__qualname__", None) or getattr(thing, "__name__", None) or repr(thing)
    return f"{module}.{name}" if module and module != "builtins" else name


async def await_many_dispatch(
    consumer_callables: Sequence[Callable[[], Awaitable[Message]]],
    dispatch: Callable[[Message], Awaitable[Any]],
) -> None:
    """Wait on several message sources at once and dispatch each message in arrival order.

    Kept for code that calls it directly, as Channels' does; hubbub's own consumers use
    a cheaper loop (see ``hubbub.consumer``). Returns (after cancelling the pending reads)
    when ``dispatch`` raises, re-raising its exception.
    """
    # ensure_future, not create_task: a source may return any awaitable, not only a coroutine.
    tasks = [asyncio.ensure_future(source()) for source in consumer_callables]
    try:
        while True:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for i, task in enumerate(tasks):
                if task in done:
                    result = task.result()
                    await dispatch(result)
                    tasks[i] = asyncio.ensure_future(consumer_callables[i]())
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

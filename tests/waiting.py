"""Waiting in tests without fixed sleeps: poll a condition up to a deadline, or move a clock.

``await eventually(lambda: cond)`` returns as soon as ``cond`` holds (fast on a quiet
machine) and fails with a clear message only after ``timeout`` seconds (generous, for a
loaded one). ``ManualClock`` is passed as a layer's ``clock`` so that expiry tests move
time forward instead of waiting it out.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any

Condition = Callable[[], Any | Awaitable[Any]]

TIMEOUT = 10.0
INTERVAL = 0.005


async def eventually(condition: Condition, timeout: float = TIMEOUT, what: str = "") -> Any:
    """Poll ``condition`` (a function, sync or async) until it returns a truthy value; return that value.

    Raises ``AssertionError`` naming ``what`` (or the condition) if it is still false after ``timeout`` s.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"not true within {timeout:g} s: {what or _describe(condition)} (last: {value!r})")
        await asyncio.sleep(INTERVAL)


def eventually_sync(condition: Callable[[], Any], timeout: float = TIMEOUT, what: str = "") -> Any:
    """``eventually`` for threads and synchronous tests: poll ``condition`` until it is truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"not true within {timeout:g} s: {what or _describe(condition)} (last: {value!r})")
        time.sleep(INTERVAL)


def _describe(condition: Callable[..., Any]) -> str:
    try:
        return inspect.getsource(condition).strip()
    except (OSError, TypeError):
        return repr(condition)


class ManualClock:
    """A wall clock that moves only when told to: ``layer = InMemoryChannelLayer(clock=clock)``.

    Starts at the real time, so times it gives are plausible wherever they are stored.
    """

    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock ``seconds`` forward."""
        self.now += seconds

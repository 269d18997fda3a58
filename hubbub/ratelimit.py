"""A per-connection limit on what a client sends: frames per second and bytes per second.

Two token buckets, each holding one second's allowance and refilled continuously:
a client may send a burst of up to ``messages_per_second`` frames (and
``bytes_per_second`` bytes) at once, then keeps to the rate. A frame larger than one
second's byte allowance can never pass. Plain object, no I/O: the consumer asks
``allows(size)`` for each frame and closes the connection when it says no.
"""

from __future__ import annotations

import time
from typing import Callable, Optional

__all__ = ["InboundRateLimit", "check_rate"]


def check_rate(value: object, name: str, owner: str) -> None:
    """``ValueError`` unless ``value`` is None (no limit) or a positive number."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{owner}.{name} must be None (no limit) or a number > 0, got {value!r}")


class InboundRateLimit:
    """Token buckets for one connection's incoming frames."""

    __slots__ = ("messages_per_second", "bytes_per_second", "_messages", "_bytes", "_at", "_clock")

    def __init__(
        self,
        messages_per_second: Optional[float],
        bytes_per_second: Optional[float],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.messages_per_second = messages_per_second
        self.bytes_per_second = bytes_per_second
        self._messages = float(messages_per_second or 0)
        self._bytes = float(bytes_per_second or 0)
        self._clock = clock
        self._at = clock()

    def allows(self, size: int) -> bool:
        """Take one frame of ``size`` bytes from the buckets; False (taking nothing) if either is short."""
        now = self._clock()
        elapsed, self._at = now - self._at, now
        messages, bytes_ = self.messages_per_second, self.bytes_per_second
        if messages is not None:
            self._messages = min(messages, self._messages + elapsed * messages)
            if self._messages < 1:
                return False
        if bytes_ is not None:
            self._bytes = min(bytes_, self._bytes + elapsed * bytes_)
            if self._bytes < size:
                return False
            self._bytes -= size
        if messages is not None:
            self._messages -= 1
        return True

    def describe(self) -> str:
        """The limits in words, for the log line and the close reason."""
        parts = []
        if self.messages_per_second is not None:
            parts.append(f"{self.messages_per_second:g} frames/s")
        if self.bytes_per_second is not None:
            parts.append(f"{self.bytes_per_second:g} bytes/s")
        return " and ".join(parts)

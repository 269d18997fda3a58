"""Log lines that a flood cannot multiply: at most one per key per interval, with a count.

A refused frame, a full channel or an over-capacity group can repeat thousands of times
a second when a client or a sender misbehaves. Each such event is worth one line, but
not thousands: ``RateLimitedLog`` writes the first occurrence of a key, then stays
quiet for ``interval`` seconds, and its next line for that key says how many were
left out meanwhile. Keys are whatever identifies "the same problem" (a group name, a
cause and a path); at most ``max_keys`` are remembered, the oldest forgotten first.
No I/O beyond the logger, no task, no timer: the clock is read when an event happens.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable

__all__ = ["RateLimitedLog"]


class RateLimitedLog:
    """Write ``logger.log(level, ...)`` at most once per key per ``interval`` seconds."""

    def __init__(
        self,
        logger: logging.Logger,
        level: int = logging.WARNING,
        interval: float = 10.0,
        max_keys: int = 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if interval < 0:
            raise ValueError(f"interval must be >= 0 seconds, got {interval!r}")
        if max_keys < 1:
            raise ValueError(f"max_keys must be >= 1, got {max_keys!r}")
        self.logger, self.level, self.interval, self.max_keys = logger, level, interval, max_keys
        self._clock = clock
        # key -> [time of the last line written, events left out since]
        self._seen: OrderedDict[Hashable, list[float]] = OrderedDict()

    def log(self, key: Hashable, msg: str, *args: object) -> bool:
        """Log ``msg % args`` unless ``key`` was logged less than ``interval`` ago; True if written."""
        now = self._clock()
        entry = self._seen.get(key)
        if entry is not None and now - entry[0] < self.interval:
            entry[1] += 1
            return False
        suppressed = int(entry[1]) if entry is not None else 0
        if entry is not None:
            self._seen.move_to_end(key)
            entry[0], entry[1] = now, 0
        else:
            self._seen[key] = [now, 0]
            if len(self._seen) > self.max_keys:
                self._seen.popitem(last=False)
        if not self.logger.isEnabledFor(self.level):
            return False
        if suppressed:
            msg = f"{msg} (and {suppressed} more like it since the last such line)"
        self.logger.log(self.level, msg, *args)
        return True

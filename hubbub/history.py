"""Group history: which groups keep it, and the in-memory ring buffer that holds it.

Theory of operation. A group with history numbers every message sent to it: an
*offset* counting up from 1, within an *epoch* (a random string). The epoch names
one unbroken run of history; it changes when history is lost (a process restart
for the in-memory layer, an emptied Redis for the Redis layers), so a client holding
``(epoch, offset)`` can always tell "I missed nothing", "here is what I missed"
and "what I missed is gone". Sent messages carry ``_epoch`` and ``_offset`` keys.

Which groups keep history is policy, set per glob pattern (``configure_group`` or
the layer's ``"groups"`` config); the first matching pattern wins, in the order the
patterns were given. Nothing here does I/O: layers own the storage and the clock.
"""

from __future__ import annotations

import fnmatch
import re
import secrets
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from re import Pattern
from typing import Any, TypedDict

__all__ = ["GroupHistory", "GroupPolicies", "HistoryPolicy", "new_epoch", "recovery"]


def new_epoch() -> str:
    """A fresh epoch: random, so a restarted process never reuses an old one."""
    return secrets.token_hex(6)


@dataclass(frozen=True)
class HistoryPolicy:
    """Keep the last ``history`` messages and/or those from the last ``ttl`` seconds."""

    history: int | None = None
    ttl: float | None = None

    def __post_init__(self) -> None:
        if self.history is None and self.ttl is None:
            raise ValueError("a group history needs history=N messages, ttl=T seconds, or both")
        if self.history is not None and (
            isinstance(self.history, bool) or not isinstance(self.history, int) or self.history < 1
        ):
            raise ValueError(f"history must be a positive number of messages, got {self.history!r}")
        if self.ttl is not None and (
            isinstance(self.ttl, bool) or not isinstance(self.ttl, (int, float)) or self.ttl <= 0
        ):
            raise ValueError(f"ttl must be a positive number of seconds, got {self.ttl!r}")


class GroupPolicies:
    """Glob pattern → ``HistoryPolicy``; answers "does this group keep history, and how much?"."""

    def __init__(self, config: Mapping[str, Mapping[str, Any]] | None = None):
        self._patterns: list[tuple[Pattern[str], HistoryPolicy]] = []
        self._cache: dict[str, HistoryPolicy | None] = {}
        for pattern, options in (config or {}).items():
            unknown = set(options) - {"history", "ttl"}
            if unknown:
                raise ValueError(f"group settings for {pattern!r}: unknown key(s) {sorted(unknown)}; use history, ttl")
            self.configure(pattern, **options)

    def __bool__(self) -> bool:
        return bool(self._patterns)

    def configure(self, pattern: str, *, history: int | None = None, ttl: float | None = None) -> None:
        """Give the groups matching ``pattern`` this history (a later call for the same pattern replaces it)."""
        if not isinstance(pattern, str) or not pattern:
            raise TypeError(f"a group pattern must be a non-empty string, got {pattern!r}")
        policy = HistoryPolicy(history, ttl)
        regex = re.compile(fnmatch.translate(pattern))
        self._patterns = [(r, p) for r, p in self._patterns if r.pattern != regex.pattern]
        self._patterns.append((regex, policy))
        self._cache.clear()

    def policy(self, group: str) -> HistoryPolicy | None:
        """The policy of ``group``, or None when it keeps no history."""
        try:
            return self._cache[group]
        except KeyError:
            pass
        found = None
        for regex, policy in self._patterns:
            if regex.match(group):
                found = policy
                break
        if len(self._cache) > 10_000:  # bounded: group names come and go
            self._cache.clear()
        self._cache[group] = found
        return found


class HistoryAnswer(TypedDict):
    """What ``group_history`` returns: the group's position, and what the asker missed.

    ``epoch``: the group's history epoch (None for a group without history);
    ``offset``: the latest message's offset in it (0 if none); ``recovered``: whether
    ``messages`` is the whole gap after the asked ``(epoch, since)``; ``messages``: the
    missed messages, oldest first, each stamped with ``_epoch`` and ``_offset``.
    """

    epoch: str | None
    offset: int
    recovered: bool
    messages: list[dict[str, Any]]


def recovery(
    epoch: str, latest: int, first_held: int, messages: list[dict[str, Any]], asked_epoch: str | None, since: int
) -> HistoryAnswer:
    """The ``group_history`` answer, given what a store holds.

    ``first_held`` is the offset of the oldest message still held (``latest + 1`` when
    none is). Recovered means: a fresh subscriber (``asked_epoch`` None), or the same
    epoch with every message after ``since`` still held.
    """
    if asked_epoch is None:
        return {"epoch": epoch, "offset": latest, "recovered": True, "messages": []}
    if asked_epoch != epoch or since > latest or since < first_held - 1:
        return {"epoch": epoch, "offset": latest, "recovered": False, "messages": []}
    return {
        "epoch": epoch,
        "offset": latest,
        "recovered": True,
        "messages": [m for m in messages if m["_offset"] > since],
    }


class GroupHistory:
    """One group's history in memory: a ring buffer of ``(stored_at, message)``."""

    __slots__ = ("policy", "epoch", "offset", "_held")

    def __init__(self, policy: HistoryPolicy):
        self.policy = policy
        self.epoch = new_epoch()
        self.offset = 0
        self._held: deque[tuple[float, dict[str, Any]]] = deque(maxlen=policy.history)

    def append(self, message: dict[str, Any], now: float) -> dict[str, Any]:
        """Stamp ``message`` (a dict the caller owns) with the next offset and keep it."""
        self.offset += 1
        message["_epoch"] = self.epoch
        message["_offset"] = self.offset
        self._held.append((now, message))
        self._drop_old(now)
        return message

    def reconfigure(self, policy: HistoryPolicy) -> None:
        """Apply a new policy, keeping the epoch, the offsets and what still fits."""
        self.policy = policy
        self._held = deque(self._held, maxlen=policy.history)

    def since(self, asked_epoch: str | None, since: int, now: float) -> HistoryAnswer:
        """What a subscriber that saw up to ``(asked_epoch, since)`` missed (see ``recovery``)."""
        self._drop_old(now)
        held = self._held
        first_held = held[0][1]["_offset"] if held else self.offset + 1
        messages = [m for _, m in held] if asked_epoch == self.epoch and since < self.offset else []
        return recovery(self.epoch, self.offset, first_held, messages, asked_epoch, since)

    def _drop_old(self, now: float) -> None:
        ttl = self.policy.ttl
        if ttl is None:
            return
        held = self._held
        cutoff = now - ttl
        while held and held[0][0] <= cutoff:
            held.popleft()

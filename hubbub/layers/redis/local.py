"""This process's part of each group, for the Redis layers. No I/O.

One copy of a group message reaches each process; ``Members`` lists the channels of
this process in each group, so the copy fans out here, in memory. A layer instance's
members may be shared by several event loops (each in its own thread), so a lock
guards them. The per-channel inboxes are in ``hubbub.layers.inbox``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator


class Members:
    """This process's channels in each group, with their expiry times (oldest first)."""

    def __init__(self) -> None:
        self._groups: dict[str, dict[str, float]] = {}
        self._lock = threading.Lock()

    def add(self, group: str, channel: str, expires_at: float) -> None:
        with self._lock:
            members = self._groups.setdefault(group, {})
            members.pop(channel, None)  # re-inserted at the back: the dict stays ordered by expiry
            members[channel] = expires_at

    def discard(self, group: str, channel: str) -> bool:
        """Remove ``channel``; ``True`` if the group has no members here any more."""
        with self._lock:
            members = self._groups.get(group)
            if members is None:
                return True
            members.pop(channel, None)
            if not members:
                del self._groups[group]
                return True
            return False

    def live(self, group: str, now: float) -> list[str]:
        """The members of ``group`` whose membership has not expired (the others are dropped)."""
        with self._lock:
            members = self._groups.get(group)
            if members is None:
                return []
            expired = []
            for channel, expires_at in members.items():
                if expires_at > now:
                    break
                expired.append(channel)
            for channel in expired:
                del members[channel]
            if not members:
                del self._groups[group]
            return list(members)

    def __contains__(self, group: object) -> bool:
        return group in self._groups

    def __iter__(self) -> Iterator[tuple[str, str, float]]:
        """Every ``(group, channel, expires_at)`` (a snapshot)."""
        with self._lock:
            snapshot = [
                (group, channel, expires_at)
                for group, members in self._groups.items()
                for channel, expires_at in members.items()
            ]
        return iter(snapshot)

    def clear(self) -> None:
        with self._lock:
            self._groups.clear()

    def __len__(self) -> int:
        return len(self._groups)

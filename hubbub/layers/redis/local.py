"""In-process bookkeeping shared by the Redis layers: per-channel inboxes and group members.

No I/O here. A process's readers put what arrives from Redis into ``Inboxes``;
``receive()`` takes it out. Taking is cancel-safe: a message handed to a receiver
that was cancelled at that moment goes back to the head of its inbox. ``Members``
is this process's part of each group, so one copy of a group message per process
fans out here, in memory.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Callable, Deque, Dict, Iterator, List, NamedTuple, Tuple


class Item(NamedTuple):
    """A message waiting in an inbox; ``counted`` if Redis counts it against capacity until received."""

    expires_at: float
    message: dict
    counted: bool


class _Inbox:
    __slots__ = ("queue", "waiters")

    def __init__(self) -> None:
        self.queue: Deque[Item] = deque()
        self.waiters: Deque[asyncio.Future] = deque()


class Inboxes:
    """The messages and waiting receivers of this process's channels.

    ``capacity(channel)`` bounds what an inbox holds of messages Redis did not
    count (group deliveries); counted ones were already checked by the sender.
    """

    def __init__(self, capacity: Callable[[str], int]):
        self._capacity = capacity
        self._inboxes: Dict[str, _Inbox] = {}

    def _inbox(self, channel: str) -> _Inbox:
        inbox = self._inboxes.get(channel)
        if inbox is None:
            inbox = self._inboxes[channel] = _Inbox()
        return inbox

    def deliver(self, channel: str, item: Item, force: bool = False) -> bool:
        """Hand ``item`` to a waiting receiver or queue it; ``False`` if the channel is full."""
        inbox = self._inbox(channel)
        waiters = inbox.waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(item)
                return True
        if not force and not item.counted and len(inbox.queue) >= self._capacity(channel):
            return False
        inbox.queue.append(item)
        return True

    async def take(self, channel: str, now: Callable[[], float], expired: Callable[[str, Item], None]) -> Item:
        """The next live item for ``channel``, waiting if there is none; ``expired`` sees the dead ones."""
        inbox = self._inbox(channel)
        queue = inbox.queue
        while queue:
            item = queue.popleft()
            if item.expires_at > now():
                return item
            expired(channel, item)
        waiter = asyncio.get_running_loop().create_future()
        inbox.waiters.append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                queue.appendleft(waiter.result())  # handed over as we were cancelled: keep it
            else:
                try:
                    inbox.waiters.remove(waiter)
                except ValueError:
                    pass
            self._forget_if_idle(channel, inbox)
            raise

    def waiting(self, channel: str) -> int:
        """How many receivers wait on ``channel`` now."""
        inbox = self._inboxes.get(channel)
        return 0 if inbox is None else sum(1 for w in inbox.waiters if not w.done())

    def drain(self, channel: str) -> List[Item]:
        """Remove and return what is queued on ``channel`` (for handing it back to Redis)."""
        inbox = self._inboxes.get(channel)
        if inbox is None:
            return []
        items = list(inbox.queue)
        inbox.queue.clear()
        self._forget_if_idle(channel, inbox)
        return items

    def sweep(self, now: float, expired: Callable[[str, Item], None]) -> None:
        """Drop expired items of channels nobody is reading, and inboxes left empty."""
        for channel, inbox in list(self._inboxes.items()):
            if inbox.waiters:
                continue
            queue = inbox.queue
            while queue and queue[0].expires_at <= now:
                expired(channel, queue.popleft())
            self._forget_if_idle(channel, inbox)

    def clear(self) -> None:
        """Forget every queued message (receivers keep waiting)."""
        for channel, inbox in list(self._inboxes.items()):
            inbox.queue.clear()
            self._forget_if_idle(channel, inbox)

    def _forget_if_idle(self, channel: str, inbox: _Inbox) -> None:
        if not inbox.queue and not inbox.waiters and self._inboxes.get(channel) is inbox:
            del self._inboxes[channel]

    def __contains__(self, channel: object) -> bool:
        return channel in self._inboxes

    def __len__(self) -> int:
        return len(self._inboxes)


class Members:
    """This process's channels in each group, with their expiry times (oldest first)."""

    def __init__(self) -> None:
        self._groups: Dict[str, Dict[str, float]] = {}

    def add(self, group: str, channel: str, expires_at: float) -> None:
        members = self._groups.setdefault(group, {})
        members.pop(channel, None)  # re-inserted at the back: the dict stays ordered by expiry
        members[channel] = expires_at

    def discard(self, group: str, channel: str) -> bool:
        """Remove ``channel``; ``True`` if the group has no members here any more."""
        members = self._groups.get(group)
        if members is None:
            return True
        members.pop(channel, None)
        if not members:
            del self._groups[group]
            return True
        return False

    def live(self, group: str, now: float) -> List[str]:
        """The members of ``group`` whose membership has not expired (the others are dropped)."""
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

    def __iter__(self) -> Iterator[Tuple[str, str, float]]:
        """Every ``(group, channel, expires_at)``."""
        for group, members in list(self._groups.items()):
            for channel, expires_at in list(members.items()):
                yield group, channel, expires_at

    def clear(self) -> None:
        self._groups.clear()

    def __len__(self) -> int:
        return len(self._groups)


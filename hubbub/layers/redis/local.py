"""In-process bookkeeping shared by the Redis layers: per-channel inboxes and group members.

No I/O here. A process's readers put what arrives from Redis into ``Inboxes``;
``receive()`` takes it out. Taking is cancel-safe: a message handed to a receiver
that was cancelled at that moment goes back to the head of its inbox. ``Members``
is this process's part of each group, so one copy of a group message per process
fans out here, in memory. Both may be shared by several event loops of one layer
instance (each in its own thread), so each guards its state with a lock.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from typing import Callable, Deque, Dict, Iterator, List, NamedTuple, Optional, Tuple


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

    Receivers may wait in different event loops (threads): a message for a receiver
    of another loop is handed over in that loop (``call_soon_threadsafe``), and goes
    back to the head of the inbox if that receiver has gone meanwhile. A lock keeps
    the queues and receivers consistent; nothing blocks while holding it. Taking the
    next queued message, the hot path, needs no lock: a deque's ``popleft`` is atomic,
    and every other removal from a queue pops too, so no message is taken twice.
    """

    def __init__(self, capacity: Callable[[str], int]):
        self._capacity = capacity
        self._inboxes: Dict[str, _Inbox] = {}
        self._lock = threading.Lock()

    def _inbox(self, channel: str) -> _Inbox:
        inbox = self._inboxes.get(channel)
        if inbox is None:
            inbox = self._inboxes[channel] = _Inbox()
        return inbox

    def deliver(self, channel: str, item: Item, force: bool = False) -> bool:
        """Hand ``item`` to a waiting receiver or queue it; ``False`` if the channel is full."""
        with self._lock:
            inbox = self._inbox(channel)
            waiters = inbox.waiters
            while waiters:
                if self._hand(channel, waiters.popleft(), item):
                    return True
            if not force and not item.counted and len(inbox.queue) >= self._capacity(channel):
                return False
            inbox.queue.append(item)
            return True

    def deliver_many(self, channels: List[str], item: Item) -> int:
        """``deliver`` one item to each of ``channels`` (a group's members here); how many were full."""
        missed = 0
        with self._lock:
            for channel in channels:
                inbox = self._inbox(channel)
                waiters = inbox.waiters
                while waiters:
                    if self._hand(channel, waiters.popleft(), item):
                        break
                else:
                    if not item.counted and len(inbox.queue) >= self._capacity(channel):
                        missed += 1
                    else:
                        inbox.queue.append(item)
        return missed

    def _hand(self, channel: str, waiter: asyncio.Future, item: Item) -> bool:
        """Give ``item`` to ``waiter`` (in its own loop if that is another); False if it cannot take it."""
        if waiter.done():
            return False
        loop = waiter.get_loop()
        if loop is _current_loop():
            waiter.set_result(item)
            return True
        try:
            loop.call_soon_threadsafe(self._hand_over, channel, waiter, item)
        except RuntimeError:  # that loop is closed: its receiver will never run
            return False
        return True

    def _hand_over(self, channel: str, waiter: asyncio.Future, item: Item) -> None:
        """In the waiter's loop: complete it, or (cancelled meanwhile) put ``item`` back first in line."""
        if not waiter.done():
            waiter.set_result(item)
            return
        with self._lock:
            inbox = self._inbox(channel)
            while inbox.waiters:
                if self._hand(channel, inbox.waiters.popleft(), item):
                    return
            inbox.queue.appendleft(item)

    async def take(self, channel: str, now: Callable[[], float], expired: Callable[[str, Item], None]) -> Item:
        """The next live item for ``channel``, waiting if there is none; ``expired`` sees the dead ones."""
        inbox = self._inboxes.get(channel)
        if inbox is not None:  # the hot path, without the lock
            try:
                item = inbox.queue.popleft()
            except IndexError:
                pass
            else:
                if item.expires_at > now():
                    return item
                expired(channel, item)
        dead: Optional[List[Item]] = None
        found: Optional[Item] = None
        with self._lock:
            inbox = self._inbox(channel)
            queue = inbox.queue
            while queue:
                item = queue.popleft()
                if item.expires_at > now():
                    found = item
                    break
                if dead is None:
                    dead = []
                dead.append(item)
            if found is None:
                waiter = asyncio.get_running_loop().create_future()
                inbox.waiters.append(waiter)
        if dead is not None:
            for item in dead:
                expired(channel, item)
        if found is not None:
            return found
        try:
            return await waiter
        except asyncio.CancelledError:
            with self._lock:
                inbox = self._inbox(channel)
                if waiter.done() and not waiter.cancelled():
                    inbox.queue.appendleft(waiter.result())  # handed over as we were cancelled: keep it
                else:
                    try:
                        inbox.waiters.remove(waiter)
                    except ValueError:
                        pass
                self._forget_if_idle(channel, inbox)
            raise

    def waiting(self, channel: str) -> int:
        """How many receivers wait on ``channel`` now."""
        with self._lock:
            inbox = self._inboxes.get(channel)
            return 0 if inbox is None else sum(1 for w in inbox.waiters if not w.done())

    def drain(self, channel: str) -> List[Item]:
        """Remove and return what is queued on ``channel`` (for handing it back to Redis)."""
        with self._lock:
            inbox = self._inboxes.get(channel)
            if inbox is None:
                return []
            items = []
            while inbox.queue:  # popped one by one: a receiver taking at the same time gets others
                try:
                    items.append(inbox.queue.popleft())
                except IndexError:
                    break
            self._forget_if_idle(channel, inbox)
            return items

    def sweep(self, now: float, expired: Callable[[str, Item], None]) -> None:
        """Drop expired items of channels nobody is reading, and inboxes left empty."""
        dead: List[Tuple[str, Item]] = []
        with self._lock:
            for channel, inbox in list(self._inboxes.items()):
                if inbox.waiters:
                    continue
                queue = inbox.queue
                while queue and queue[0].expires_at <= now:
                    try:
                        item = queue.popleft()
                    except IndexError:
                        break
                    if item.expires_at > now:  # a receiver took the expired head meanwhile
                        queue.appendleft(item)
                        break
                    dead.append((channel, item))
                self._forget_if_idle(channel, inbox)
        for channel, item in dead:
            expired(channel, item)

    def clear(self) -> None:
        """Forget every queued message (receivers keep waiting)."""
        with self._lock:
            for channel, inbox in list(self._inboxes.items()):
                inbox.queue.clear()  # flush(): a receiver taking at the same moment may still get one
                self._forget_if_idle(channel, inbox)

    def _forget_if_idle(self, channel: str, inbox: _Inbox) -> None:
        if not inbox.queue and not inbox.waiters and self._inboxes.get(channel) is inbox:
            del self._inboxes[channel]

    def __contains__(self, channel: object) -> bool:
        return channel in self._inboxes

    def __len__(self) -> int:
        return len(self._inboxes)


def _current_loop() -> Optional[asyncio.AbstractEventLoop]:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class Members:
    """This process's channels in each group, with their expiry times (oldest first)."""

    def __init__(self) -> None:
        self._groups: Dict[str, Dict[str, float]] = {}
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

    def live(self, group: str, now: float) -> List[str]:
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

    def __iter__(self) -> Iterator[Tuple[str, str, float]]:
        """Every ``(group, channel, expires_at)`` (a snapshot)."""
        with self._lock:
            snapshot = [(group, channel, expires_at)
                        for group, members in self._groups.items() for channel, expires_at in members.items()]
        return iter(snapshot)

    def clear(self) -> None:
        with self._lock:
            self._groups.clear()

    def __len__(self) -> int:
        return len(self._groups)

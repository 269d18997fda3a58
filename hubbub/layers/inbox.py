"""Channel inboxes, shared by every layer: queued messages and the receivers waiting for them. No I/O.

An ``Inbox`` is one channel: its queue and the futures of its waiting receivers. A
message is handed straight to a waiting receiver when there is one, and queued
otherwise. Both moves are cancel-safe:

- ``Inbox.hand`` gives an item to the first receiver still waiting. A receiver of
  another event loop (a thread's, e.g. ``async_to_sync``) gets it in its own loop
  (``call_soon_threadsafe``); if that receiver has gone meanwhile, the item goes to
  ``missed``, which hands it on or puts it back first in line: nothing is lost.
- ``Inbox.withdraw`` is a cancelled receiver leaving: it stops waiting, and an item
  handed to it at the moment it was cancelled is returned, to be put back.

The in-memory layer keeps one ``Inbox`` per channel itself (single loop, no lock:
its queue is what ``layer.channels`` shows). The Redis layers keep theirs in an
``Inboxes``: the process-local inboxes of one layer instance, which several event
loops (threads) may share, so a lock guards them.

The "fastlane" extension (``attach_direct`` / ``detach_direct`` on the layers) lives
here too. An inbox may hold a ``direct`` sink, a synchronous callable offered each
item just before ``hand`` would wake a receiver waiting in the running loop (so the
queue is empty and the item would reach that receiver right now). The sink returns
True when it delivered the message itself: the item counts as received and the
receiver keeps waiting, never woken. False (or an exception, logged at most once a
minute per sink's type) and the hand-off goes on as usual. Queued items, and
receivers of other loops, never meet the sink, so order and cross-thread hand-over
are untouched. A channel without a sink pays one slot read per hand-off. An inbox
with a sink is never idle: it outlives the moments nobody waits on it, until detached.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import deque
from collections.abc import Callable, Sized
from typing import Any, Generic, NamedTuple, TypeVar

from ..ratelog import RateLimitedLog

logger = logging.getLogger("hubbub.layers")

#: Called, in the receiver's loop, with an inbox and the item its receiver of another loop left untaken.
Missed = Callable[["Inbox[Any]", Any], None]
#: A fastlane sink: given a message for a channel whose receiver waits in the running loop, True
#: if it delivered the message itself (the receiver is not woken), False to let it be handed over.
Sink = Callable[[dict[str, Any]], bool]
#: An inbox's queue: a deque in the Redis layers, the in-memory layer's list-based ``Queue``.
QueueT = TypeVar("QueueT", bound=Sized)

#: Seconds between two log lines about sinks (of one type) that raised.
SINK_ERROR_LOG_INTERVAL = 60.0
_sink_errors = RateLimitedLog(logger, logging.ERROR, interval=SINK_ERROR_LOG_INTERVAL)


def offer(direct: Callable[[Any], bool], item: Any, channel: str) -> bool:
    """Whether sink ``direct`` took ``item``; a sink that raises did not (logged, rate-limited)."""
    try:
        return bool(direct(item))
    except Exception as exc:  # the sink's bug: the message still reaches its receiver
        sink = getattr(direct, "sink", direct)
        kind = getattr(sink, "__qualname__", type(sink).__qualname__)
        _sink_errors.log(
            kind,
            "fastlane sink %s raised %s: %s; the message for %r was handed to its receiver instead",
            kind,
            type(exc).__name__,
            exc,
            channel,
        )
        return False


class Inbox(Generic[QueueT]):
    """One channel: ``queue`` (oldest first), the futures of waiting receivers (``waiter`` the
    first in line) and the ``direct`` sink (fastlane), offered items before a receiver of the running loop.

    A channel has almost always one receiver or none, so the first is a plain slot and only
    the ones behind it (rare) go in a deque made on demand. An idle connection's inbox holds
    it for its life: no container at all (an empty deque allocates a 64-slot block, 760 bytes,
    and a list reallocates its items each time it goes from one waiter to none and back).
    """

    __slots__ = ("direct", "name", "queue", "waiter", "_behind")

    def __init__(self, name: str, queue: QueueT) -> None:
        self.name = name
        self.queue = queue
        #: The first waiting receiver's future, or ``None`` when nobody waits.
        self.waiter: asyncio.Future[Any] | None = None
        self._behind: deque[asyncio.Future[Any]] | None = None  # the receivers waiting after ``waiter``
        #: Called with an item (as ``hand`` got it) before waking a receiver of the running loop.
        self.direct: Callable[[Any], bool] | None = None

    @property
    def waiters(self) -> list[asyncio.Future[Any]]:
        """The waiting receivers' futures, first in line first (a copy)."""
        if self.waiter is None:
            return []
        return [self.waiter, *(self._behind or ())]

    def hand(self, item: Any, running: asyncio.AbstractEventLoop | None, missed: Missed) -> bool:
        """Give ``item`` to the first receiver still waiting; ``False`` if there is none.

        ``running`` is the caller's event loop (``None`` outside one). A receiver of
        another loop gets the item in that loop; ``missed(self, item)`` runs there if
        it has gone by then. A receiver of the running loop is not woken when the
        ``direct`` sink takes the item (it stays first in line).
        """
        waiter = self.waiter
        while waiter is not None:
            if waiter.done():
                waiter = self._next()
                continue
            loop = waiter.get_loop()
            if loop is running:
                if self.direct is not None and offer(self.direct, item, self.name):
                    return True  # the receiver stays first in line
                if self._behind is None:  # the usual case, inline: nobody behind it
                    self.waiter = None
                else:
                    self._next()
                waiter.set_result(item)
                return True
            self._next()
            try:
                loop.call_soon_threadsafe(self._hand_over, waiter, item, missed)
            except RuntimeError:  # that loop is closed: its receiver will never run
                waiter = self.waiter
                continue
            return True
        return False

    def _next(self) -> asyncio.Future[Any] | None:
        """The first in line leaves: the next one, now first (or ``None``)."""
        behind = self._behind
        if behind is None:
            self.waiter = None
            return None
        waiter = self.waiter = behind.popleft()
        if not behind:
            self._behind = None
        return waiter

    def _hand_over(self, waiter: asyncio.Future[Any], item: Any, missed: Missed) -> None:
        """In the waiter's loop: complete it, or (it was cancelled meanwhile) pass ``item`` to ``missed``."""
        if waiter.done():
            missed(self, item)
        else:
            waiter.set_result(item)

    def wait(self, loop: asyncio.AbstractEventLoop) -> asyncio.Future[Any]:
        """A new waiting receiver's future, in line after the others."""
        waiter = loop.create_future()
        if self.waiter is None:
            self.waiter = waiter
        elif self._behind is None:
            self._behind = deque((waiter,))
        else:
            self._behind.append(waiter)
        return waiter

    def withdraw(self, waiter: asyncio.Future[Any]) -> Any | None:
        """A cancelled receiver leaves: the item handed to it as it was cancelled (to put back), else ``None``."""
        if waiter.done() and not waiter.cancelled():
            return waiter.result()
        if waiter is self.waiter:
            self._next()
        elif self._behind is not None:
            with contextlib.suppress(ValueError):
                self._behind.remove(waiter)
            if not self._behind:
                self._behind = None
        return None

    def idle(self) -> bool:
        """Nothing queued, nobody waiting, no sink: the inbox can be forgotten (and remade on demand)."""
        return not self.queue and self.waiter is None and self.direct is None


def running_loop() -> asyncio.AbstractEventLoop | None:
    """The running event loop, or ``None`` outside one (a send from synchronous code)."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class Item(NamedTuple):
    """A message waiting in a Redis layer's inbox; ``counted`` if Redis counts it against capacity until received."""

    expires_at: float
    message: dict[str, Any]
    counted: bool


class ItemSink:
    """A fastlane sink as a Redis inbox's ``direct``: offered each item's message.

    ``counted(channel)`` runs for each counted item the sink took, as a receive of it
    would (the list layer sends the item's receipt to Redis from there). Group
    deliveries are never counted: their fan-out pays one attribute test for this.
    """

    __slots__ = ("channel", "counted", "sink")

    def __init__(self, channel: str, sink: Sink, counted: Callable[[str], None] | None) -> None:
        self.channel, self.sink, self.counted = channel, sink, counted

    def __call__(self, item: Item) -> bool:
        if not self.sink(item.message):
            return False
        if item.counted and self.counted is not None:
            self.counted(self.channel)
        return True


class Inboxes:
    """The process-local inboxes of one Redis layer instance, shared by its event loops.

    ``capacity(channel)`` bounds what an inbox holds of messages Redis did not
    count (group deliveries); counted ones were already checked by the sender.

    Sinks (``attach``) run with the lock held, in the loop that delivers: they must
    not call back into the layer.

    A lock keeps the queues and receivers consistent; nothing blocks while holding
    it. Taking the next queued message, the hot path, needs no lock: a deque's
    ``popleft`` is atomic, and every other removal from a queue pops too, so no
    message is taken twice.
    """

    def __init__(self, capacity: Callable[[str], int]) -> None:
        self._capacity = capacity
        self._inboxes: dict[str, Inbox[deque[Item]]] = {}
        self._lock = threading.Lock()

    def _inbox(self, channel: str) -> Inbox[deque[Item]]:
        inbox = self._inboxes.get(channel)
        if inbox is None:
            inbox = self._inboxes[channel] = Inbox(channel, deque())
        return inbox

    def deliver(self, channel: str, item: Item, force: bool = False) -> bool:
        """Hand ``item`` to a waiting receiver or queue it; ``False`` if the channel is full."""
        with self._lock:
            inbox = self._inbox(channel)
            if inbox.hand(item, running_loop(), self._missed):
                return True
            if not force and not item.counted and len(inbox.queue) >= self._capacity(channel):
                return False
            inbox.queue.append(item)
            return True

    def deliver_many(self, channels: list[str], item: Item) -> int:
        """``deliver`` one item to each of ``channels`` (a group's members here); how many were full."""
        missed = 0
        running = running_loop()
        with self._lock:
            for channel in channels:
                inbox = self._inbox(channel)
                if inbox.hand(item, running, self._missed):
                    continue
                if not item.counted and len(inbox.queue) >= self._capacity(channel):
                    missed += 1
                else:
                    inbox.queue.append(item)
        return missed

    def attach(self, channel: str, sink: Sink, counted: Callable[[str], None] | None = None) -> None:
        """Offer ``channel``'s messages to ``sink`` before a receiver of the delivering loop (fastlane).

        ``counted(channel)`` is told of each counted item the sink took. A second sink replaces the first.
        """
        with self._lock:
            self._inbox(channel).direct = ItemSink(channel, sink, counted)

    def detach(self, channel: str, sink: Sink) -> None:
        """Stop offering ``channel``'s messages to ``sink``; nothing if another sink (or none) is attached."""
        with self._lock:
            inbox = self._inboxes.get(channel)
            # ==, not is: a bound method is a new object each time it is read.
            if inbox is not None and isinstance(inbox.direct, ItemSink) and inbox.direct.sink == sink:
                inbox.direct = None
                self._forget_if_idle(inbox)

    def _missed(self, inbox: Inbox[Any], item: Item) -> None:
        """In a receiver's loop: its item came as it left; the next receiver gets it, or it goes back first in line."""
        with self._lock:
            inbox = self._inbox(inbox.name)
            if not inbox.hand(item, running_loop(), self._missed):
                inbox.queue.appendleft(item)

    async def take(self, channel: str, now: Callable[[], float], expired: Callable[[str, Item], None]) -> Item:
        """The next live item for ``channel``, waiting if there is none; ``expired`` sees the dead ones."""
        inbox = self._inboxes.get(channel)
        if inbox is not None:  # the hot path, without the lock
            try:
                item: Item = inbox.queue.popleft()
            except IndexError:
                pass
            else:
                if item.expires_at > now():
                    return item
                expired(channel, item)
        dead: list[Item] | None = None
        found: Item | None = None
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
                waiter = inbox.wait(asyncio.get_running_loop())
        if dead is not None:
            for item in dead:
                expired(channel, item)
        if found is not None:
            return found
        try:
            result: Item = await waiter
            return result
        except asyncio.CancelledError:
            with self._lock:
                inbox = self._inbox(channel)
                handed = inbox.withdraw(waiter)
                if handed is not None:
                    inbox.queue.appendleft(handed)  # handed over as we were cancelled: keep it
                self._forget_if_idle(inbox)
            raise

    def waiting(self, channel: str) -> int:
        """How many receivers wait on ``channel`` now."""
        with self._lock:
            inbox = self._inboxes.get(channel)
            return 0 if inbox is None else sum(1 for w in inbox.waiters if not w.done())

    def drain(self, channel: str) -> list[Item]:
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
            self._forget_if_idle(inbox)
            return items

    def sweep(self, now: float, expired: Callable[[str, Item], None]) -> None:
        """Drop expired items of channels nobody is reading, and inboxes left empty."""
        dead: list[tuple[str, Item]] = []
        with self._lock:
            for channel, inbox in list(self._inboxes.items()):
                if inbox.waiter is not None:
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
                self._forget_if_idle(inbox)
        for channel, item in dead:
            expired(channel, item)

    def clear(self) -> None:
        """Forget every queued message (receivers keep waiting)."""
        with self._lock:
            for inbox in list(self._inboxes.values()):
                inbox.queue.clear()  # flush(): a receiver taking at the same moment may still get one
                self._forget_if_idle(inbox)

    def _forget_if_idle(self, inbox: Inbox[deque[Item]]) -> None:
        if inbox.idle() and self._inboxes.get(inbox.name) is inbox:
            del self._inboxes[inbox.name]

    def __contains__(self, channel: object) -> bool:
        return channel in self._inboxes

    def __len__(self) -> int:
        return len(self._inboxes)

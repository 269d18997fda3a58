"""The in-process channel layer: for development, tests and single-process sites.

Theory of operation. Each channel in use is an ``Inbox`` (``hubbub.layers.inbox``, shared
with the Redis layers): its ``Queue`` of ``(expires_at, message)`` and the futures of
receivers waiting on it. A send hands
the message straight to a waiting receiver when there is one, and queues it
otherwise. ``group_send`` shallow-copies the message once and hands the same dict to
every member: nothing is serialised or deep-copied per member, so received messages
are to be treated as read-only.

Two plain, live dicts show that state as Channels' layer does: ``layer.channels``
maps a name to its queue from the first send to (or receive on) it until a receive
leaves it empty, and ``layer.groups`` maps a group to ``{channel: time.time() when
added}``, kept in insertion order so the oldest members sit at its front. The inbox
behind an entry stays while its consumer listens, so the entry comes and goes per
message at the cost of a dict write; deleting an entry from outside, or ``flush()``,
never strands a waiting receiver.

Nothing outlives its use. Expired messages and memberships are purged at the start
of ``receive()`` and ``group_send()``, a channel whose message expired unread also
leaving every group (as in Channels). Where Channels scans everything on every call,
two times make it one comparison until something is due: ``_clean_at``, the earliest
time anything held can expire, and ``_expire_at``, the same for queued messages only.
``receive()`` reads the clock only while ``_expire_at`` is set, so a consumer whose
messages are handed straight to it (the usual case) pays nothing; memberships then
expire at the next ``group_send()`` instead. An inbox is dropped when its waiting receiver is cancelled
with nothing queued (a consumer's listener, as the consumer ends), and a sweep at
most every ``expiry / 2`` seconds drops the idle inboxes one-off receivers leave.

Fan-out lets receivers drain. A burst from one busy sender (a client's queued frames
handled back to back, each a ``group_send``) would never yield to the event loop, so
members' listeners would not run until the burst ended and their channels would
overflow at ``capacity``. So every ``group_send`` is counted, and every half of the
smallest capacity (50 by default) it yields once: the listeners woken meanwhile run
and empty their channels, which so hold at most that many messages of a burst while
their consumers keep up. This costs one loop turn per 50 sends and nothing per member.
A member too slow to drain still drops past its capacity; the drops are logged at most once per
group every ``FULL_LOG_INTERVAL`` seconds, with a count.

Fastlane ("fastlane" in ``extensions``): ``attach_direct(channel, sink)`` makes the
channel's inbox offer each message to ``sink(message)`` just before waking a
receiver that waits on it in the running loop (see ``hubbub.layers.inbox``). A
consumer whose handler only forwards the message writes it out there, with no task
woken; a group message reaches every member's sink as the one dict ``group_send``
made. A sunk message is received as far as ``channels``, capacity and expiry go: it
was never queued. Sweeps, ``flush()`` and cancelled receivers leave an inbox with a
sink in place until ``detach_direct``.

Presence and history cost nothing for groups that do not use them: a group with
history (``configure_group`` or the ``groups`` config) has a ``GroupHistory`` ring
buffer that stamps and keeps each message sent to it (see ``hubbub.history``);
presence is a dict of members per group. Presence events are delivered like any
group message but are not kept in history or numbered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import string
import time
from collections.abc import Callable, Mapping
from typing import Any

from .. import metrics
from ..exceptions import ChannelFull
from ..history import GroupHistory, GroupPolicies, HistoryAnswer, HistoryPolicy
from ..ratelog import RateLimitedLog
from .base import BaseChannelLayer, PresenceMember
from .inbox import Inbox, Sink, running_loop

logger = logging.getLogger("hubbub.layers")

#: Seconds between two "member channel(s) full" lines for one group.
FULL_LOG_INTERVAL = 10.0

_LETTERS = string.ascii_letters + string.digits
_NEVER = float("inf")


class Queue(list[Any]):  # of (expiry, message) tuples
    """One channel's ``(expires_at, message)`` pairs, oldest first: what ``layer.channels`` holds.

    A list that also answers asyncio.Queue's ``qsize()`` and ``empty()``, as the values
    of Channels' ``channels`` do. Bounded by the channel's capacity (``send`` raises
    ``ChannelFull``). A list, not a deque: every listening consumer's channel holds one,
    nearly always empty, and an empty list is 56 bytes where a deque allocates a 64-slot
    block up front (760). Taking the head (``pop(0)``) moves at most a capacity's worth
    of pointers, and a channel holds few while its consumer keeps up.
    """

    __slots__ = ()

    def qsize(self) -> int:
        return len(self)

    def empty(self) -> bool:
        return not self


def _drop_expired(inbox: Inbox[Queue], now: float) -> bool:
    """Drop the messages of ``inbox`` expired at ``now``; whether there were any."""
    queue = inbox.queue
    dropped = 0
    for expires_at, _ in queue:  # ordered by expiry
        if expires_at > now:
            break
        dropped += 1
    if dropped:
        del queue[:dropped]
        metrics.messages_lost.inc("InMemoryChannelLayer", "expired", dropped)
    return dropped > 0


class InMemoryChannelLayer(BaseChannelLayer):
    """A channel layer held in this process's memory (no cross-process delivery)."""

    extensions = ["groups", "flush", "presence", "history", "fastlane"]

    def __init__(
        self,
        expiry: float = 60,
        group_expiry: float = 86400,
        capacity: int = 100,
        channel_capacity: dict[str, int] | None = None,
        groups: Mapping[str, Mapping[str, Any]] | None = None,
        presence_timeout: float = 30,
        clock: Callable[[], float] = time.time,
        **kwargs: Any,
    ):
        super().__init__(expiry=expiry, capacity=capacity, channel_capacity=channel_capacity)
        #: The clock message and membership expiry read: ``time.time`` as in Channels, bound
        #: once (one attribute read per message); tests pass a controllable one to expire
        #: things without waiting.
        self.clock = clock
        self.group_expiry = group_expiry
        #: How long a member of a silent process stays listed. Here the members live and
        #: die with this process, so nothing ages out; kept so configs match the Redis layers.
        self.presence_timeout = presence_timeout
        self._policies = GroupPolicies(groups)
        self._histories: dict[str, GroupHistory] = {}
        self._presence: dict[str, dict[str, PresenceMember]] = {}
        #: ``{channel name: queue of (expires_at, message)}``, live, as Channels' attribute.
        self.channels: dict[str, Queue] = {}
        self._inboxes: dict[str, Inbox[Queue]] = {}  # every channel in use (a superset of ``channels``)
        #: ``{group name: {channel name: time.time() when added}}``: live, as Channels' attribute.
        self.groups: dict[str, dict[str, float]] = {}
        self._capacities: dict[str, int] = {}
        self._next_sweep = clock() + expiry / 2
        self._clean_at = _NEVER  # no queued message nor membership can expire before this time
        self._expire_at = _NEVER  # no queued message can expire before this time
        #: Group deliveries dropped because the member's channel was full.
        self.dropped = 0
        self._full_lines = RateLimitedLog(logger, logging.WARNING, interval=FULL_LOG_INTERVAL)
        #: group_sends between two yields to the event loop: half the smallest capacity.
        self.yield_every = max(1, min([capacity, *(value for _, value in self.channel_capacity)]) // 2)
        self._unyielded = 0

    # -- channels -------------------------------------------------------------------

    async def new_channel(self, prefix: str = "specific.") -> str:
        """A new process-local channel name, unique in this layer."""
        return prefix + "inmemory!" + "".join(random.choices(_LETTERS, k=12))

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        """Queue ``message`` on ``channel``; ``ChannelFull`` if the channel is at capacity."""
        self.require_valid_message(message)
        now = self.clock()
        self._deliver(channel, dict(message), now + self.expiry, now, running_loop())
        if now >= self._next_sweep:
            self._sweep(now)

    def _deliver(
        self,
        channel: str,
        message: dict[str, Any],
        expires_at: float,
        now: float,
        running: asyncio.AbstractEventLoop | None,
    ) -> None:
        inbox = self._inboxes.get(channel)
        if inbox is None:
            self.require_valid_channel_name(channel)
            inbox = self._inboxes[channel] = Inbox(channel, Queue())
        if inbox.waiter is not None and inbox.hand(message, running, self._missed):
            return
        queue = inbox.queue
        capacity = self._capacities.get(channel)
        if capacity is None:
            capacity = self._capacity(channel)
        if len(queue) >= capacity and not (_drop_expired(inbox, now) and len(queue) < capacity):
            raise ChannelFull(f"Channel {channel!r} is full ({len(queue)} messages waiting).")
        queue.append((expires_at, message))
        self.channels[channel] = queue
        if expires_at < self._expire_at:
            self._expire_at = expires_at
            if expires_at < self._clean_at:
                self._clean_at = expires_at

    def attach_direct(self, channel: str, sink: Sink) -> None:
        """Offer ``channel``'s messages to ``sink`` before waking its receiver of the running loop (fastlane).

        ``sink(message)`` is called synchronously, in the sending loop, only while a
        receiver waits on ``channel`` in that loop (nothing is queued then); True means
        it delivered the message, and the receiver keeps waiting. A second sink replaces
        the first. The sink must not call the layer.
        """
        inbox = self._inboxes.get(channel)
        if inbox is None:
            self.require_valid_channel_name(channel)
            inbox = self._inboxes[channel] = Inbox(channel, Queue())
        inbox.direct = sink

    def detach_direct(self, channel: str, sink: Sink) -> None:
        """Stop offering ``channel``'s messages to ``sink``; nothing if another sink (or none) is attached."""
        inbox = self._inboxes.get(channel)
        if inbox is not None and inbox.direct is not None and inbox.direct == sink:  # ==: bound methods
            inbox.direct = None
            self._drop_if_unused(channel, inbox)

    def _capacity(self, channel: str) -> int:
        capacity = self._capacities.get(channel)
        if capacity is None:
            if len(self._capacities) > 10_000:  # bounded cache: channel names come and go
                self._capacities.clear()
            capacity = self._capacities[channel] = self.get_capacity(channel)
        return capacity

    async def receive(self, channel: str) -> dict[str, Any]:
        """The next message on ``channel``, waiting for one if needed.

        Cancel-safe: a message handed over just as the receiver was cancelled is put
        back at the head of the channel, never lost. Expired messages and memberships
        are purged first, in every channel and group.
        """
        if self._expire_at != _NEVER:  # a message is (or was lately) queued: it may have expired
            now = self.clock()
            if now >= self._clean_at:
                self._clean(now)
        inbox = self._inboxes.get(channel)
        if inbox is None:
            self.require_valid_channel_name(channel)
            inbox = self._inboxes[channel] = Inbox(channel, Queue())
        queue = inbox.queue
        channels = self.channels
        if queue:
            message: dict[str, Any] = queue.pop(0)[1]
            if not queue:
                try:  # noqa: SIM105  (a statement, not contextlib.suppress: this runs per message)
                    del channels[channel]
                except KeyError:
                    pass
            return message
        channels[channel] = queue  # a listening receiver's channel has an entry
        waiter = inbox.wait(asyncio.get_running_loop())
        try:
            message = await waiter
        except asyncio.CancelledError:
            handed = inbox.withdraw(waiter)
            if handed is not None:
                self._put_back(channel, inbox, handed)
            self._drop_if_unused(channel, inbox)
            raise
        if not queue:
            with contextlib.suppress(KeyError):
                del channels[channel]
        return message

    def _missed(self, inbox: Inbox[Queue], message: dict[str, Any]) -> None:
        """In a receiver's loop: a message sent from another loop came as its receiver left; not lost."""
        if self._inboxes.get(inbox.name) is not inbox:  # forgotten meanwhile: deliver it anew
            now = self.clock()
            self._deliver(inbox.name, message, now + self.expiry, now, running_loop())
        elif not inbox.hand(message, running_loop(), self._missed):
            self._put_back(inbox.name, inbox, message)

    def _put_back(self, channel: str, inbox: Inbox[Queue], message: dict[str, Any]) -> None:
        """Return a message its cancelled receiver never saw to the head of the channel."""
        queue = inbox.queue
        expires_at = self.clock() + self.expiry
        if queue:
            expires_at = min(expires_at, queue[0][0])  # keep the queue ordered by expiry
        queue.insert(0, (expires_at, message))
        self.channels[channel] = queue
        self._expire_at = min(self._expire_at, expires_at)
        self._clean_at = min(self._clean_at, expires_at)

    def _drop_if_unused(self, channel: str, inbox: Inbox[Queue]) -> None:
        """Forget an inbox nobody waits on and nothing is queued in (it is remade on demand)."""
        if inbox.idle() and self._inboxes.get(channel) is inbox:
            del self._inboxes[channel]
            if self.channels.get(channel) is inbox.queue:
                del self.channels[channel]

    def _sweep(self, now: float) -> None:
        """Forget the inboxes nobody waits on and nothing is queued in (one-off receivers leave them)."""
        self._next_sweep = now + self.expiry / 2
        for name, inbox in list(self._inboxes.items()):
            if inbox.idle():
                del self._inboxes[name]
                if self.channels.get(name) is inbox.queue:
                    del self.channels[name]

    def _clean(self, now: float) -> None:
        """Drop expired messages (and the entries left empty) and expired memberships; set the next times.

        A channel whose message expired unread also leaves every group, as in Channels:
        nobody is reading it.
        """
        next_at = _NEVER
        unread: list[str] = []
        for name, inbox in list(self._inboxes.items()):
            queue = inbox.queue
            if _drop_expired(inbox, now):
                unread.append(name)
                if not queue:
                    if self.channels.get(name) is queue:
                        del self.channels[name]
                    if inbox.idle():
                        del self._inboxes[name]
            if queue:
                next_at = min(next_at, queue[0][0])
        self._expire_at = next_at
        cutoff = now - self.group_expiry
        for group, members in list(self.groups.items()):
            self._expire_members(members, cutoff)
            for name in unread:
                members.pop(name, None)
            if not members:
                del self.groups[group]
            else:
                next_at = min(next_at, next(iter(members.values())) + self.group_expiry)
        self._clean_at = next_at

    # -- groups -----------------------------------------------------------------------

    async def group_add(self, group: str, channel: str) -> None:
        """Add ``channel`` to ``group`` (again: refreshes its expiry)."""
        members = self.groups.get(group)
        if members is None:
            self.require_valid_group_name(group)
            members = self.groups[group] = {}
        if channel in members:
            del members[channel]  # re-insert at the back: the dict stays ordered by age
        else:
            self.require_valid_channel_name(channel)
        now = members[channel] = self.clock()
        if now + self.group_expiry < self._clean_at:
            self._clean_at = now + self.group_expiry

    async def group_discard(self, group: str, channel: str) -> None:
        """Remove ``channel`` from ``group``; removing a non-member is not an error."""
        members = self.groups.get(group)
        if members is None:
            self.require_valid_group_name(group)
            self.require_valid_channel_name(channel)
            return
        members.pop(channel, None)
        if not members:
            del self.groups[group]

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        """Deliver ``message`` to every member of ``group``.

        A member whose channel is full misses this message: the drop is counted in
        ``self.dropped`` and logged (at most once per group every ``FULL_LOG_INTERVAL``
        seconds, with the count). Every ``yield_every`` calls this yields to the event
        loop once, so that receivers drain during a burst from one sender.
        In a group with history the message is numbered and kept first, members or not.
        Expired messages and memberships are purged first, in every channel and group.
        """
        self.require_valid_message(message)
        metrics.count_group_send(group)
        now = self.clock()
        if now >= self._clean_at:
            self._clean(now)
        if self._policies:
            message = self._record_in_history(group, message)
        self._fan_out(group, message)
        self._unyielded += 1
        if self._unyielded >= self.yield_every:
            self._unyielded = 0
            await asyncio.sleep(0)

    def _record_in_history(self, group: str, message: dict[str, Any]) -> dict[str, Any]:
        """A copy of ``message`` stamped and kept in ``group``'s history, if the group has one."""
        history = self._histories.get(group)
        if history is None:
            policy = self._policies.policy(group)
            if policy is None:
                return message
            self.require_valid_group_name(group)
            history = self._histories[group] = GroupHistory(policy)
        return history.append(dict(message), time.monotonic())

    def _fan_out(self, group: str, message: dict[str, Any]) -> None:
        members = self.groups.get(group)
        if members is None:
            self.require_valid_group_name(group)
            return
        now = self.clock()
        self._expire_members(members, now - self.group_expiry)
        message = dict(message)
        expires_at = now + self.expiry
        running = running_loop()
        missed = 0
        for channel in list(members):
            try:
                self._deliver(channel, message, expires_at, now, running)
            except ChannelFull:
                missed += 1
        if missed:
            self.dropped += missed
            metrics.messages_lost.inc("InMemoryChannelLayer", "channel_full", missed)
            self._full_lines.log(
                group,
                "group_send to %r: %d member channel(s) full; message %r dropped for them",
                group,
                missed,
                message["type"],
            )
        if now >= self._next_sweep:
            self._sweep(now)

    def _expire_members(self, members: dict[str, float], cutoff: float) -> None:
        """Drop the members added at or before ``cutoff`` (they sit at the front)."""
        expired: list[str] = []
        for channel, added in members.items():
            if added > cutoff:
                break
            expired.append(channel)
        for channel in expired:
            del members[channel]

    # -- hubbub extras ------------------------------------------------------------------

    async def group_count(self, group: str) -> int:
        """How many channels are in ``group`` now."""
        members = self.groups.get(group)
        if members is None:
            self.require_valid_group_name(group)
            return 0
        self._expire_members(members, self.clock() - self.group_expiry)
        if not members:
            del self.groups[group]
        return len(members)

    async def presence_add(self, group: str, channel: str, *, user_id: Any = None, info: Any = None) -> PresenceMember:
        """Register ``channel`` as present in ``group`` and tell the group (``presence.join``).

        Adding a channel again updates its ``user_id`` and ``info`` (keeping ``joined_at``)
        and announces it again, so listeners see the new info.
        """
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        members = self._presence.setdefault(group, {})
        joined_at = members[channel]["joined_at"] if channel in members else self.clock()
        member = PresenceMember(channel=channel, user_id=user_id, info=info, joined_at=joined_at)
        members[channel] = member
        self._fan_out(group, {"type": "presence.join", "group": group, "member": member})
        return PresenceMember(**member)

    async def presence_remove(self, group: str, channel: str) -> bool:
        """Unregister ``channel`` from ``group`` and tell the group (``presence.leave``); False if absent."""
        members = self._presence.get(group)
        if members is None or channel not in members:
            self.require_valid_group_name(group)
            self.require_valid_channel_name(channel)
            return False
        member = members.pop(channel)
        if not members:
            del self._presence[group]
        self._fan_out(group, {"type": "presence.leave", "group": group, "member": member})
        return True

    async def presence(self, group: str) -> list[PresenceMember]:
        """The members present in ``group``, in the order they joined (copies: safe to change)."""
        members = self._presence.get(group)
        if members is None:
            self.require_valid_group_name(group)
            return []
        return [PresenceMember(**member) for member in members.values()]

    def history_policy(self, group: str) -> HistoryPolicy | None:
        """What history ``group`` keeps (from the ``groups`` config or ``configure_group``), or None."""
        return self._policies.policy(group)

    def configure_group(self, pattern: str, *, history: int | None = None, ttl: float | None = None) -> None:
        """Groups matching the glob ``pattern`` keep their last ``history`` messages and/or ``ttl`` seconds.

        Applies at once, to groups whose history already started too (they keep their epoch).
        """
        self._policies.configure(pattern, history=history, ttl=ttl)
        for group, kept in self._histories.items():
            policy = self._policies.policy(group)
            if policy is not None:
                kept.reconfigure(policy)

    async def group_history(self, group: str, *, epoch: str | None = None, since: int = 0) -> HistoryAnswer:
        """What a subscriber that saw ``group`` up to ``(epoch, since)`` missed.

        ``{"epoch", "offset", "recovered", "messages"}``: with ``recovered`` True the
        messages after ``since`` in order (none for a fresh subscriber, ``epoch=None``);
        False when the epoch changed or part of the gap is no longer held. A group
        without history has epoch None and offset 0 and can recover nothing.
        """
        self.require_valid_history_position(group, epoch, since)
        history = self._histories.get(group)
        if history is None:
            policy = self._policies.policy(group) if self._policies else None
            if policy is None:
                return {"epoch": None, "offset": 0, "recovered": epoch is None, "messages": []}
            history = self._histories[group] = GroupHistory(policy)
        return history.since(epoch, since, time.monotonic())

    # -- housekeeping -------------------------------------------------------------------

    async def flush(self) -> None:
        """Forget every queued message, group, presence and history.

        ``channels`` and ``groups`` are emptied in place; receivers waiting now keep
        waiting and get what is sent to them later, and fastlane sinks stay attached.
        """
        self.groups.clear()
        self._presence.clear()
        self._histories.clear()
        self.channels.clear()
        for name, inbox in list(self._inboxes.items()):
            inbox.queue.clear()
            if inbox.idle():  # a receiver's or a sink's inbox stays
                del self._inboxes[name]
        self._clean_at = self._expire_at = _NEVER

    async def close(self) -> None:
        """Nothing to release; kept for the layer interface."""

    def held(self) -> tuple[int, int]:
        """``(channels held, groups held)``, counting channels kept only for a waiting receiver
        (which ``channels`` omits): a public probe for tests that check memory stays bounded."""
        return len(self._inboxes), len(self.groups)

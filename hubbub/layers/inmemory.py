"""The in-process channel layer: for development, tests and single-process sites.

Theory of operation. Each channel is an ``_Inbox``: a FIFO of ``(expires_at, message)``
and the futures of receivers waiting on it. A send hands the message straight to a
waiting receiver when there is one, and queues it otherwise. A group is a dict of
``channel -> expires_at`` kept in insertion order, so expired members sit at its
front and are found without a scan. ``group_send`` shallow-copies the message once
and hands the same dict to every member: nothing is serialised or deep-copied per
member, so received messages are to be treated as read-only.

Nothing outlives its use: an inbox is dropped when its waiting receiver is
cancelled with nothing queued (a consumer's listener, as the consumer ends), and a
sweep at most every ``expiry / 2`` seconds drops expired messages, and the inboxes
left empty, of channels nobody is waiting on.

Presence and history cost nothing for groups that do not use them: a group with
history (``configure_group`` or the ``groups`` config) has a ``GroupHistory`` ring
buffer that stamps and keeps each message sent to it (see ``hubbub.history``);
presence is a dict of members per group. Presence events are delivered like any
group message but are not kept in history or numbered.
"""

from __future__ import annotations

import asyncio
import logging
import random
import string
import time
from collections import deque
from typing import Any, Deque, Dict, List, Mapping, Optional, Tuple

from .. import metrics
from ..exceptions import ChannelFull
from ..history import GroupHistory, GroupPolicies
from .base import BaseChannelLayer

logger = logging.getLogger("hubbub.layers")

_LETTERS = string.ascii_letters + string.digits


class _Inbox:
    __slots__ = ("queue", "waiters")

    def __init__(self) -> None:
        self.queue: Deque[Tuple[float, dict]] = deque()
        self.waiters: Deque[asyncio.Future] = deque()

    def drop_expired(self, now: float) -> None:
        queue = self.queue
        dropped = 0
        while queue and queue[0][0] <= now:
            queue.popleft()
            dropped += 1
        if dropped:
            metrics.messages_lost.inc("InMemoryChannelLayer", "expired", dropped)


def _resolve(waiter: asyncio.Future, message: dict) -> None:
    if not waiter.done():
        waiter.set_result(message)


class InMemoryChannelLayer(BaseChannelLayer):
    """A channel layer held in this process's memory (no cross-process delivery)."""

    extensions = ["groups", "flush", "presence", "history"]

    def __init__(
        self,
        expiry: float = 60,
        group_expiry: float = 86400,
        capacity: int = 100,
        channel_capacity: Optional[Dict[str, int]] = None,
        groups: Optional[Mapping[str, Mapping[str, Any]]] = None,
        presence_timeout: float = 30,
        **kwargs: Any,
    ):
        super().__init__(expiry=expiry, capacity=capacity, channel_capacity=channel_capacity)
        self.group_expiry = group_expiry
        #: How long a member of a silent process stays listed. Here the members live and
        #: die with this process, so nothing ages out; kept so configs match the Redis layers.
        self.presence_timeout = presence_timeout
        self._policies = GroupPolicies(groups)
        self._histories: Dict[str, GroupHistory] = {}
        self._presence: Dict[str, Dict[str, Dict[str, Any]]] = {}
        self._inboxes: Dict[str, _Inbox] = {}
        self._groups: Dict[str, Dict[str, float]] = {}
        self._capacities: Dict[str, int] = {}
        self._next_sweep = time.monotonic() + expiry / 2
        #: Group deliveries dropped because the member's channel was full.
        self.dropped = 0

    # -- channels -------------------------------------------------------------------

    async def new_channel(self, prefix: str = "specific.") -> str:
        """A new process-local channel name, unique in this layer."""
        return prefix + "inmemory!" + "".join(random.choices(_LETTERS, k=12))

    async def send(self, channel: str, message: dict) -> None:
        """Queue ``message`` on ``channel``; ``ChannelFull`` if the channel is at capacity."""
        self.require_valid_message(message)
        now = time.monotonic()
        self._deliver(channel, dict(message), now + self.expiry, now, _running_loop())
        if now >= self._next_sweep:
            self._sweep(now)

    def _deliver(
        self, channel: str, message: dict, expires_at: float, now: float, running: Optional[asyncio.AbstractEventLoop]
    ) -> None:
        inbox = self._inboxes.get(channel)
        if inbox is None:
            self.require_valid_channel_name(channel)
            inbox = self._inboxes[channel] = _Inbox()
        waiters = inbox.waiters
        while waiters:
            waiter = waiters.popleft()
            if waiter.done():
                continue
            loop = waiter.get_loop()
            if loop is running:
                waiter.set_result(message)
            else:  # a send from another thread's loop, e.g. async_to_sync in a sync view
                loop.call_soon_threadsafe(_resolve, waiter, message)
            return
        queue = inbox.queue
        if queue and queue[0][0] <= now:
            inbox.drop_expired(now)
        if len(queue) >= self._capacity(channel):
            raise ChannelFull(f"Channel {channel!r} is full ({len(queue)} messages waiting).")
        queue.append((expires_at, message))

    def _capacity(self, channel: str) -> int:
        capacity = self._capacities.get(channel)
        if capacity is None:
            if len(self._capacities) > 10_000:  # bounded cache: channel names come and go
                self._capacities.clear()
            capacity = self._capacities[channel] = self.get_capacity(channel)
        return capacity

    async def receive(self, channel: str) -> dict:
        """The next message on ``channel``, waiting for one if needed.

        Cancel-safe: a message handed over just as the receiver was cancelled is put
        back at the head of the channel, never lost.
        """
        inbox = self._inboxes.get(channel)
        if inbox is None:
            self.require_valid_channel_name(channel)
            inbox = self._inboxes[channel] = _Inbox()
        queue = inbox.queue
        if queue:
            inbox.drop_expired(time.monotonic())
            if queue:
                return queue.popleft()[1]
        waiter = asyncio.get_running_loop().create_future()
        inbox.waiters.append(waiter)
        try:
            message = await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                queue.appendleft((time.monotonic() + self.expiry, waiter.result()))
            else:
                try:
                    inbox.waiters.remove(waiter)
                except ValueError:
                    pass
            self._drop_if_unused(channel, inbox)
            raise
        return message

    def _drop_if_unused(self, channel: str, inbox: _Inbox) -> None:
        """Forget an inbox nobody waits on and nothing is queued in (it is remade on demand)."""
        if not inbox.queue and not inbox.waiters and self._inboxes.get(channel) is inbox:
            del self._inboxes[channel]

    def _sweep(self, now: float) -> None:
        """Drop expired messages of unread channels, and the inboxes left empty."""
        self._next_sweep = now + self.expiry / 2
        for name, inbox in list(self._inboxes.items()):
            if not inbox.waiters:
                inbox.drop_expired(now)
                if not inbox.queue:
                    del self._inboxes[name]

    # -- groups -----------------------------------------------------------------------

    async def group_add(self, group: str, channel: str) -> None:
        """Add ``channel`` to ``group`` (again: refreshes its expiry)."""
        members = self._groups.get(group)
        if members is None:
            self.require_valid_group_name(group)
            members = self._groups[group] = {}
        if channel in members:
            del members[channel]  # re-insert at the back: the dict stays ordered by expiry
        else:
            self.require_valid_channel_name(channel)
        members[channel] = time.monotonic() + self.group_expiry

    async def group_discard(self, group: str, channel: str) -> None:
        """Remove ``channel`` from ``group``; removing a non-member is not an error."""
        members = self._groups.get(group)
        if members is None:
            self.require_valid_group_name(group)
            self.require_valid_channel_name(channel)
            return
        members.pop(channel, None)
        if not members:
            del self._groups[group]

    async def group_send(self, group: str, message: dict) -> None:
        """Deliver ``message`` to every member of ``group``.

        A member whose channel is full misses this message: the drop is counted in
        ``self.dropped`` and logged once per call with the number of members missed.
        In a group with history the message is numbered and kept first, members or not.
        """
        self.require_valid_message(message)
        if self._policies:
            message = self._keep(group, message)
        self._fan_out(group, message)

    def _keep(self, group: str, message: dict) -> dict:
        """A copy of ``message`` stamped and kept in ``group``'s history, if the group has one."""
        history = self._histories.get(group)
        if history is None:
            policy = self._policies.policy(group)
            if policy is None:
                return message
            self.require_valid_group_name(group)
            history = self._histories[group] = GroupHistory(policy)
        return history.append(dict(message), time.monotonic())

    def _fan_out(self, group: str, message: dict) -> None:
        members = self._groups.get(group)
        if members is None:
            self.require_valid_group_name(group)
            return
        now = time.monotonic()
        self._expire_members(members, now)
        message = dict(message)
        expires_at = now + self.expiry
        running = _running_loop()
        missed = 0
        for channel in list(members):
            try:
                self._deliver(channel, message, expires_at, now, running)
            except ChannelFull:
                missed += 1
        if missed:
            self.dropped += missed
            metrics.messages_lost.inc("InMemoryChannelLayer", "channel_full", missed)
            logger.warning(
                "group_send to %r: %d member channel(s) full; message %r dropped for them",
                group, missed, message["type"],
            )
        if now >= self._next_sweep:
            self._sweep(now)

    def _expire_members(self, members: Dict[str, float], now: float) -> None:
        expired: List[str] = []
        for channel, expires_at in members.items():
            if expires_at > now:
                break
            expired.append(channel)
        for channel in expired:
            del members[channel]

    # -- hubbub extras ------------------------------------------------------------------

    async def group_count(self, group: str) -> int:
        """How many channels are in ``group`` now."""
        members = self._groups.get(group)
        if members is None:
            self.require_valid_group_name(group)
            return 0
        self._expire_members(members, time.monotonic())
        return len(members)

    async def presence_add(
        self, group: str, channel: str, *, user_id: Any = None, info: Any = None
    ) -> Dict[str, Any]:
        """Register ``channel`` as present in ``group`` and tell the group (``presence.join``).

        Adding a channel again updates its ``user_id`` and ``info`` (keeping ``joined_at``)
        and announces it again, so listeners see the new info.
        """
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        members = self._presence.setdefault(group, {})
        joined_at = members[channel]["joined_at"] if channel in members else time.time()
        member = {"channel": channel, "user_id": user_id, "info": info, "joined_at": joined_at}
        members[channel] = member
        self._fan_out(group, {"type": "presence.join", "group": group, "member": member})
        return dict(member)

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

    async def presence(self, group: str) -> List[Dict[str, Any]]:
        """The members present in ``group``, in the order they joined (copies: safe to change)."""
        members = self._presence.get(group)
        if members is None:
            self.require_valid_group_name(group)
            return []
        return [dict(member) for member in members.values()]

    def configure_group(self, pattern: str, *, history: Optional[int] = None, ttl: Optional[float] = None) -> None:
        """Groups matching the glob ``pattern`` keep their last ``history`` messages and/or ``ttl`` seconds.

        Applies at once, to groups whose history already started too (they keep their epoch).
        """
        self._policies.configure(pattern, history=history, ttl=ttl)
        for group, kept in self._histories.items():
            policy = self._policies.policy(group)
            if policy is not None:
                kept.reconfigure(policy)

    async def group_history(self, group: str, *, epoch: Optional[str] = None, since: int = 0) -> Dict[str, Any]:
        """What a subscriber that saw ``group`` up to ``(epoch, since)`` missed.

        ``{"epoch", "offset", "recovered", "messages"}``: with ``recovered`` True the
        messages after ``since`` in order (none for a fresh subscriber, ``epoch=None``);
        False when the epoch changed or part of the gap is no longer held. A group
        without history has epoch None and offset 0 and can recover nothing.
        """
        self.require_valid_group_name(group)
        if epoch is not None and not isinstance(epoch, str):
            raise TypeError(f"epoch must be a string or None, got {epoch!r}")
        if isinstance(since, bool) or not isinstance(since, int):
            raise TypeError(f"since must be an int offset, got {since!r}")
        history = self._histories.get(group)
        if history is None:
            policy = self._policies.policy(group) if self._policies else None
            if policy is None:
                return {"epoch": None, "offset": 0, "recovered": epoch is None, "messages": []}
            history = self._histories[group] = GroupHistory(policy)
        return history.since(epoch, since, time.monotonic())

    # -- housekeeping -------------------------------------------------------------------

    async def flush(self) -> None:
        """Forget every queued message, group, presence and history (receivers keep waiting)."""
        self._groups.clear()
        self._presence.clear()
        self._histories.clear()
        for name, inbox in list(self._inboxes.items()):
            inbox.queue.clear()
            if not inbox.waiters:
                del self._inboxes[name]

    async def close(self) -> None:
        """Nothing to release; kept for the layer interface."""

    def _stats(self) -> Tuple[int, int]:
        """(channels held, groups held): for tests that check memory stays bounded."""
        return len(self._inboxes), len(self._groups)


def _running_loop() -> Optional[asyncio.AbstractEventLoop]:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None

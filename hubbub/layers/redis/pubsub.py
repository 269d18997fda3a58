"""``RedisPubSubChannelLayer``: delivery through Redis pub/sub, nothing queued in Redis.

Theory of operation. Each event loop has one subscriber connection per shard,
subscribed to its process channel (direct messages to its ``specific.P!x``
channels, and group joins made for them elsewhere), to each group one of its
channels belongs to, and to each worker channel it receives on. ``group_send`` is
one ``PUBLISH``: Redis sends one copy to each subscribed process, which fans it out
to its members in memory. Membership is also kept in a sorted set per group, for
``group_count`` and ``group_expiry``. In a group with history a script numbers the
message, keeps it in the group's stream and publishes it, in one round trip.

Pub/sub delivers to whoever is subscribed at that moment: a message sent while a
process is reconnecting is not delivered (senders count messages they could not
publish in ``lost``, and so are messages ``PUBLISH`` says reached nobody although
the group has members), every process receiving on a worker channel gets each of its
messages, and capacity is enforced by the receiving process (full channels drop and
count in ``dropped``).

A subscriber reconnects as soon as another connection of its loop finds Redis back
(not after its own backoff), and re-subscribes to everything at once. Waiting for a
subscription to be confirmed is bounded by ``command_timeout``: a Redis that does
not confirm in time counts as down, and the subscriber reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
import weakref
from collections.abc import Sequence
from typing import Any

from redis.asyncio.connection import Connection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ... import metrics
from ..inbox import Inboxes, Item
from .common import PROCESS_ID_LENGTH, LoopState, RedisLayerBase, log_failure, weak_capacity
from .connection import CONNECTION_ERRORS, HostConfig, ShardLink, deadline
from .local import Members
from .protocol import (
    DIRECT,
    GROUP,
    JOIN,
    LEAVE,
    frame_head,
    membership_frame,
    message_frame,
    parse_frame,
    process_of,
    shard_index,
)

logger = logging.getLogger("hubbub.layers.redis")


class _Subscriber:
    """One shard's subscriber connection for one loop; re-subscribes everything after reconnecting."""

    def __init__(self, layer: RedisPubSubChannelLayer, state: _PubSubState, link: ShardLink, inbox: str):
        self.layer_ref = weakref.ref(layer)  # weak: a layer nobody uses is collected, and its readers stopped
        self.state, self.link = state, link
        # A cluster shard is one slot: sharded pub/sub there, on the node that owns it.
        self.commands = ("SSUBSCRIBE", "SUNSUBSCRIBE") if link.sharded else ("SUBSCRIBE", "UNSUBSCRIBE")
        self.names: set[str] = {inbox}
        self.connection: Connection | None = None
        #: Done once the process inbox is subscribed (or the first attempt failed).
        self.ready = state.loop.create_future()
        self.confirmations: dict[str, list[asyncio.Future[Any]]] = {inbox: [self.ready]}
        self.session: asyncio.Task[Any] | None = None  # one connection's life: connect, subscribe, read
        self.task = state.loop.create_task(self._run())

    async def subscribe(self, name: str) -> None:
        """Subscribe to ``name``, returning once Redis confirms it (or a connection attempt failed)."""
        if name in self.names and name not in self.confirmations:
            return
        if self.connection is None and self.link.down_since is not None:
            self.names.add(name)  # Redis is down: subscribed with the others when the connection is back
            return
        confirmed = self.state.loop.create_future()
        self.confirmations.setdefault(name, []).append(confirmed)
        if name not in self.names:
            self.names.add(name)
            if self.connection is not None:  # else the connection subscribes to every name when it opens
                with contextlib.suppress(*CONNECTION_ERRORS):  # the reader reconnects, subscribes again and confirms
                    await self.connection.send_command(self.commands[0], name, check_health=False)
        await self._confirmed(confirmed)

    def confirmed(self, name: str) -> bool:
        """Whether ``name`` is subscribed on the open connection and Redis has confirmed it."""
        return self.connection is not None and name in self.names and name not in self.confirmations

    async def wait_ready(self) -> None:
        """Wait until the process inbox is subscribed, or a first attempt failed (bounded)."""
        await self._confirmed(self.ready)

    async def _confirmed(self, confirmed: asyncio.Future[Any]) -> None:
        """Wait for a confirmation, at most ``command_timeout`` s: past that Redis counts as down."""
        if confirmed.done():
            return
        try:
            async with deadline(self.link.command_timeout):
                await asyncio.shield(confirmed)
        except asyncio.TimeoutError:
            self._stalled()

    def _stalled(self) -> None:
        """Redis did not confirm a subscription in time: an outage; drop this connection and reconnect."""
        session = self.session
        if self.connection is None or session is None or session.done():
            return
        self.link.failed(
            RedisTimeoutError(
                f"Redis {self.link.spec.label} did not confirm a subscription within {self.link.command_timeout:g} s"
            )
        )
        session.cancel()

    async def unsubscribe(self, name: str) -> None:
        if name not in self.names:
            return
        self.names.discard(name)
        if self.connection is not None:
            with contextlib.suppress(*CONNECTION_ERRORS):
                await self.connection.send_command(self.commands[1], name, check_health=False)

    async def _run(self) -> None:
        try:
            while True:
                self.session = session = self.state.loop.create_task(self._connect_and_read())
                await asyncio.wait([session])
                failure = None if session.cancelled() else session.exception()  # cancelled: _stalled() reported it
                # A ResponseError here is a cluster's MOVED: the slot has a new master, reconnect there.
                if failure is not None and not isinstance(failure, (*CONNECTION_ERRORS, ResponseError)):
                    raise failure
                if self.connection is not None:
                    if failure is not None:
                        self.link.failed(failure)
                    await self.connection.disconnect(nowait=True)
                    self.connection = None
                self._confirm_all()
                await self.link.wait_to_retry()
        finally:
            if self.session is not None and not self.session.done():
                self.session.cancel()
                await asyncio.gather(self.session, return_exceptions=True)
            self._confirm_all()
            if self.connection is not None:
                await self.connection.disconnect(nowait=True)

    async def _connect_and_read(self) -> None:
        connection = await self.link.connect()
        self.connection = connection
        await connection.send_command(self.commands[0], *self.names, check_health=False)
        while True:
            reply = await connection.read_response(timeout=float("inf"))
            kind = reply[0]
            if kind == b"sunsubscribe" and reply[1].decode() in self.names:
                # Not asked for: the slot moved to another node (failover, resharding).
                raise RedisConnectionError(f"sharded pub/sub channel {reply[1].decode()!r} moved")
            if kind in (b"message", b"smessage"):
                layer = self.layer_ref()
                if layer is not None:
                    layer._dispatch(self.state, reply[2], layer.clock())
                del layer
            elif kind in (b"subscribe", b"ssubscribe"):
                for confirmed in self.confirmations.pop(reply[1].decode(), ()):
                    if not confirmed.done():
                        confirmed.set_result(None)

    def _confirm_all(self) -> None:
        for waiters in self.confirmations.values():
            for confirmed in waiters:
                if not confirmed.done():
                    confirmed.set_result(None)
        self.confirmations.clear()


class _PubSubState(LoopState):
    def __init__(self, layer: RedisPubSubChannelLayer, loop: asyncio.AbstractEventLoop):
        process = uuid.uuid4().hex[:PROCESS_ID_LENGTH]  # each loop subscribes on its own
        super().__init__(layer, loop, process, Inboxes(weak_capacity(layer)), Members())
        self.subscribers = [
            _Subscriber(layer, self, link, layer.keys.inbox(self.process, link.index)) for link in self.links
        ]

    def tasks(self) -> list[asyncio.Task[Any]]:
        return [*super().tasks(), *(subscriber.task for subscriber in self.subscribers)]


class RedisPubSubChannelLayer(RedisLayerBase[_PubSubState]):
    """A channel layer over Redis pub/sub, accepting ``channels_redis.pubsub``'s settings.

    ``on_disconnect`` / ``on_reconnect`` (channels_redis options) are accepted and kept
    as attributes, as channels_redis does; no message is sent for them.
    """

    #: Messages go out without the random prefix the list layer puts before them.
    prefixes_messages = False

    def __init__(
        self,
        hosts: Sequence[HostConfig] | None = None,
        prefix: str = "asgi",
        on_disconnect: str | None = None,
        on_reconnect: str | None = None,
        **kwargs: Any,
    ):
        super().__init__(hosts, prefix, **kwargs)
        self.on_disconnect = on_disconnect
        self.on_reconnect = on_reconnect

    def _new_state(self, loop: asyncio.AbstractEventLoop) -> _PubSubState:
        return _PubSubState(self, loop)

    async def new_channel(self, prefix: str = "specific.") -> str:
        """A new process-local channel name, delivered through this process's subscription."""
        state = self._state()
        name = f"{prefix.rstrip('.')}.{state.process}!{uuid.uuid4().hex[:12]}"
        await self._subscriber(state, self.non_local_name(name)).wait_ready()
        return name

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        """Publish ``message`` to ``channel``'s receivers (``TypeError`` if it cannot be encoded)."""
        self.require_valid_message(message)
        self.require_valid_channel_name(channel)
        payload = self.serialize(message)
        state = self._state()
        frame = message_frame(DIRECT, channel, int((self.clock() + self.expiry) * 1000), payload)
        process = process_of(channel)
        if process is None:
            receivers = await self._publish(self._shard(state, channel), self.keys.channel(channel), frame)
        else:
            link = self._shard(state, self.non_local_name(channel))
            receivers = await self._publish(link, self.keys.inbox(process, link.index), frame)
        if not receivers:
            self._count_unheard()

    async def _publish(self, link: ShardLink, name: str, frame: bytes) -> int:
        """``PUBLISH``; the number of subscribers it reached (``RedisUnavailable`` if Redis is down)."""
        try:
            return int(await link.pipe.execute("PUBLISH", name, frame))
        except CONNECTION_ERRORS as exc:
            self._count_lost(link)
            raise self._unavailable(link, exc) from exc

    def _count_unheard(self) -> None:
        """A message reached no subscriber although someone should have been listening: lost."""
        self.lost += 1
        self._count_loss("no_subscriber")

    async def _has_members(self, state: _PubSubState, link: ShardLink, group: str) -> bool:
        """Whether ``group`` has live members: this loop's own, else those Redis lists (one ``ZCOUNT``)."""
        now = self.clock()
        if state.members.live(group, now):
            return True
        try:
            return int(await link.pipe.execute("ZCOUNT", self.keys.members(group), f"({now}", "+inf")) > 0
        except CONNECTION_ERRORS:
            return False  # Redis went away just now: the next send counts the outage

    async def receive(self, channel: str) -> dict[str, Any]:
        """The next message on ``channel``, waiting for one if needed (cancel-safe)."""
        self.require_valid_channel_name(channel)
        state = self._state()
        if process_of(channel) is None:
            await self._subscriber(state, channel).subscribe(self.keys.channel(channel))
        item = await state.inboxes.take(channel, self.clock, lambda ch, it: self._expired(state, ch, it))
        return item.message

    def subscribed_to_group(self, group: str) -> bool:
        """Whether this process (this event loop) is subscribed to ``group``, confirmed by Redis: a
        public probe for tests that wait for a ``group_add`` made by another process to take effect."""
        return self._subscriber(self._state(), group).confirmed(self.keys.topic(group))

    def subscribed_to_channel(self, channel: str) -> bool:
        """Whether this process (this event loop) is subscribed to the worker ``channel``, confirmed
        by Redis: a public probe for tests that wait for a receiver to be reachable."""
        return self._subscriber(self._state(), channel).confirmed(self.keys.channel(channel))

    def _subscriber(self, state: _PubSubState, name: str) -> _Subscriber:
        return state.subscribers[shard_index(name, len(state.links))]

    def _dispatch(self, state: _PubSubState, data: bytes, now: float) -> None:
        try:
            frame = parse_frame(data)
        except ValueError as exc:
            self._reject(exc)
            return
        if frame.kind == GROUP:
            self._fan_out(state, frame, now)
        elif frame.kind == DIRECT:
            expires_at = frame.expires_ms / 1000
            message = self._decode(frame.payload) if expires_at > now else None
            if expires_at <= now:
                self._count_loss("expired")
            if message is not None and not state.inboxes.deliver(frame.target, Item(expires_at, message, False)):
                self.dropped += 1
                self._count_loss("channel_full")
                logger.warning("Channel %r is full; message %r dropped", frame.target, message.get("type"))
        else:
            self._file_membership(state, frame, now)
            if frame.kind == JOIN:
                subscribing = self._subscriber(state, frame.target).subscribe(self.keys.topic(frame.target))
                state.loop.create_task(subscribing).add_done_callback(log_failure)
        self._sweep(state, now)

    # -- groups -----------------------------------------------------------------------

    async def group_add(self, group: str, channel: str) -> None:
        """Add ``channel`` to ``group``; returns once this process is subscribed to the group."""
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        state = self._state()
        expires_at = self.clock() + self.group_expiry
        link = self._shard(state, group)
        process = process_of(channel)
        if process is not None and process != state.process:
            await link.pipe.execute("ZADD", self.keys.members(group), expires_at, channel)
            await self._publish(link, self.keys.inbox(process, link.index), membership_frame(JOIN, group, channel))
            return
        # Received here (worker channels too): not waiting for the ZADD's reply, and if Redis
        # is unreachable the membership is recorded again when it is back.
        state.members.add(group, channel, expires_at)
        with contextlib.suppress(*CONNECTION_ERRORS):
            (await link.pipe.submit("ZADD", self.keys.members(group), expires_at, channel)).add_done_callback(
                log_failure
            )
        await self._subscriber(state, group).subscribe(self.keys.topic(group))

    async def group_discard(self, group: str, channel: str) -> None:
        """Remove ``channel`` from ``group``; removing a non-member is not an error."""
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        state = self._state()
        link = self._shard(state, group)
        process = process_of(channel)
        if (process is None or process == state.process) and state.members.discard(group, channel):
            await self._subscriber(state, group).unsubscribe(self.keys.topic(group))
        try:
            reply = await link.pipe.submit("ZREM", self.keys.members(group), channel)
            if process is not None and process != state.process:
                await self._publish(link, self.keys.inbox(process, link.index), membership_frame(LEAVE, group, channel))
            reply.add_done_callback(log_failure)
        except CONNECTION_ERRORS:
            if process is not None and process != state.process:
                raise

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        """Publish ``message`` to every process with members in ``group`` (one ``PUBLISH``).

        In a group with history a script numbers and keeps it, then publishes: still one round trip.
        If Redis is unreachable the message is counted in ``lost`` and ``ChannelLayerUnavailable``
        raised; if it reached no subscriber although the group has members, it is counted in ``lost``.
        """
        self.require_valid_message(message)
        self.require_valid_group_name(group)
        metrics.count_group_send(group)
        payload = self.serialize(message)
        state = self._state()
        expires_ms = int((self.clock() + self.expiry) * 1000)
        link = self._shard(state, group)
        policy = self._policies.policy(group)
        try:
            if policy is None:
                frame = message_frame(GROUP, group, expires_ms, payload)
                receivers = await link.pipe.execute("PUBLISH", self.keys.topic(group), frame)
            else:
                receivers = await link.pipe.script(
                    "PUBLISH_KEPT",
                    [self.keys.history(group), self.keys.position(group)],
                    [
                        *self._history_args(policy),
                        self.keys.topic(group),
                        frame_head(GROUP, group, expires_ms),
                        payload,
                    ],
                )
        except CONNECTION_ERRORS as exc:
            self._count_lost(link)
            raise self._unavailable(link, exc) from exc
        if not receivers and await self._has_members(state, link, group):
            self._count_unheard()

    async def _send_plain(self, state: _PubSubState, group: str, message: dict[str, Any]) -> None:
        frame = message_frame(GROUP, group, int((self.clock() + self.expiry) * 1000), self.serialize(message))
        await self._publish(self._shard(state, group), self.keys.topic(group), frame)

    async def _rejoin(self, state: _PubSubState, link: ShardLink) -> None:
        """Redis is back: record this loop's memberships on it again."""
        count = len(state.links)
        replies = [
            await link.pipe.submit("ZADD", self.keys.members(group), expires_at, channel)
            for group, channel, expires_at in state.members
            if shard_index(group, count) == link.index
        ]
        await asyncio.gather(*replies)

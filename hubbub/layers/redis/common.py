"""What both Redis layers share: settings, per-event-loop state, decoding, group fan-out, presence, history.

Group fan-out: a group message reaches each process (each loop, on the pub/sub
layer) once; it is decoded there once, and the one dict is given to every local
member (``Inboxes.deliver_many``), so a fastlane sink (``attach_direct``, see
``hubbub.layers.inbox``) can recognise the same message across members by identity.

Presence (keys in ``protocol``): a member is a hash entry (user id, info), a joined-at
score and a heartbeat score. The loop that added a member refreshes its heartbeat
every ``presence_timeout / 3`` seconds, one pipelined write per shard, putting it
back if Redis lost it; a member whose heartbeat is older than ``presence_timeout``
(its process died) is removed by whoever notices first (a listing or another
process's heartbeat), which sends its ``presence.leave``. Presence events are plain
group messages: never numbered or kept.

History: ``group_send`` to a group with a policy numbers and keeps the message in
the same script run that delivers it (see ``scripts``); ``group_history`` reads the
stream and lets ``hubbub.history.recovery`` decide what the subscriber gets.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, TypeVar

from redis.exceptions import ResponseError

from ... import metrics
from ...history import GroupPolicies, HistoryAnswer, HistoryPolicy, new_epoch, recovery
from ...ratelog import RateLimitedLog
from ..base import BaseChannelLayer, PresenceMember
from ..inbox import Inboxes, Item, Sink, running_loop
from .cluster import CLUSTER_SHARDS, ClusterSeeds
from .connection import (
    COMMAND_TIMEOUT,
    CONNECT_TIMEOUT,
    CONNECTION_ERRORS,
    HostConfig,
    RedisUnavailable,
    ShardLink,
    decode_hosts,
    positive_seconds,
)
from .local import Members
from .protocol import JOIN, LEAVE, Frame, Keys, parse_seq, shard_index
from .serializers import registry

logger = logging.getLogger("hubbub.layers.redis")

#: Hex digits of the id in process-local channel names (``specific.<id>!...``): 48 random
#: bits, so two layer instances (processes) never pick the same one in practice.
PROCESS_ID_LENGTH = 12
#: Seconds between two log lines about full channels in the same group (a count says how many were left out).
OVER_CAPACITY_LOG_INTERVAL = 10.0


class LoopState:
    """What a layer holds for one event loop: its shard links and background tasks.

    Connections and futures belong to one loop, so each loop (a server's, or the
    short-lived one of each ``async_to_sync`` call) gets its own. ``process`` (the id
    in process-local names), ``inboxes`` and ``members`` are the loop's own on the
    pub/sub layer, and the layer instance's, shared by all its loops, on the list layer.
    A state holds no reference to its layer, so a layer nobody uses any more can be
    collected while its loops run (its states are released then, see ``release_state``).
    """

    def __init__(
        self,
        layer: RedisLayerBase[Any],
        loop: asyncio.AbstractEventLoop,
        process: str,
        inboxes: Inboxes,
        members: Members,
    ):
        self.loop = loop
        self.process = process
        self.links = layer._new_links()
        self.inboxes = inboxes
        self.members = members
        self.next_sweep = layer.clock() + layer.expiry / 2
        #: Presence members this loop added: group -> channel -> (joined_at, serialised data).
        self.present: dict[str, dict[str, tuple[float, bytes]]] = {}
        self.heartbeat: asyncio.Task[Any] | None = None

    def tasks(self) -> list[asyncio.Task[Any]]:
        """The background tasks to stop when the state is closed."""
        return [] if self.heartbeat is None else [self.heartbeat]

    async def finish(self) -> None:
        """Last writes before the state's connections close (none here)."""


State = TypeVar("State", bound=LoopState)


async def release_state(state: LoopState) -> None:
    """Stop a loop's background tasks and close its connections (run in that loop)."""
    tasks = [task for task in state.tasks() if task is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    with contextlib.suppress(*CONNECTION_ERRORS):
        await state.finish()
    for link in state.links:
        await link.close()


def _release_when_collected(states: dict[asyncio.AbstractEventLoop, State], lock: threading.Lock) -> None:
    """A layer was garbage-collected: release its states in loops still running (finalizer; no layer here)."""
    with lock:
        pending = list(states.values())
        states.clear()
    for state in pending:
        if state.loop.is_closed():
            continue
        with contextlib.suppress(RuntimeError):  # closed meanwhile
            state.loop.call_soon_threadsafe(_start_release, state)


def _start_release(state: LoopState) -> None:
    state.loop.create_task(release_state(state)).add_done_callback(log_failure)


def _release_on_close(layer: RedisLayerBase[Any], loop: asyncio.AbstractEventLoop) -> None:
    """Make ``loop.close()`` release the layer's state for that loop first.

    A loop closed without cancelling its tasks (scripts, hand-made loops) would leave the
    layer's readers pending, to be destroyed by the garbage collector with an error each.
    The wrapper runs the loop once more to stop them and close their connections.
    """
    layer_ref = weakref.ref(layer)
    original = loop.close

    def close() -> None:
        layer = layer_ref()
        if layer is not None and not loop.is_running() and not loop.is_closed():
            with layer._states_lock:
                state = layer._states.pop(loop, None)
            if state is not None:
                # RuntimeError: another loop runs in this thread, the tasks are left to the collector.
                with contextlib.suppress(RuntimeError):
                    loop.run_until_complete(release_state(state))
        original()

    with contextlib.suppress(AttributeError, TypeError):  # a loop that cannot be wrapped: released when seen closed
        loop.close = close  # type: ignore[method-assign]


def weak_capacity(layer: RedisLayerBase[Any]) -> Callable[[str], int]:
    """``layer.get_capacity`` without keeping the layer alive (its default once it is gone)."""
    get_capacity, default = weak_method(layer.get_capacity), layer.capacity

    def capacity(channel: str) -> int:
        value = get_capacity(channel)
        return default if value is None else value

    return capacity


def weak_method(method: Callable[..., Any]) -> Callable[..., Any]:
    """A callback calling bound ``method`` while its object lives (so callbacks keep nothing alive)."""
    ref = weakref.WeakMethod(method)

    def call(*args: Any) -> Any:
        target = ref()
        return None if target is None else target(*args)

    return call


class RedisLayerBase(BaseChannelLayer, Generic[State]):
    """Settings, state and fan-out shared by ``RedisChannelLayer`` and ``RedisPubSubChannelLayer``."""

    extensions = ["groups", "flush", "presence", "history", "fastlane"]

    def __init__(
        self,
        hosts: Sequence[HostConfig] | None = None,
        prefix: str = "asgi",
        expiry: float = 60,
        group_expiry: float = 86400,
        capacity: int = 100,
        channel_capacity: dict[str, int] | None = None,
        symmetric_encryption_keys: Sequence[Any] | None = None,
        random_prefix_length: int = 12,
        serializer_format: str = "msgpack",
        groups: Mapping[str, Mapping[str, Any]] | None = None,
        presence_timeout: float = 30,
        socket_connect_timeout: float = CONNECT_TIMEOUT,
        command_timeout: float = COMMAND_TIMEOUT,
        cluster: Sequence[str] | None = None,
        clock: Callable[[], float] = time.time,
    ):
        super().__init__(expiry=expiry, capacity=capacity, channel_capacity=channel_capacity)
        #: The wall clock of this process's expiry bookkeeping (message and membership expiry
        #: times, presence ages; ``time.time``), bound once. Tests pass a controllable one to
        #: expire things without waiting; Redis' own key TTLs still run on Redis' clock.
        self.clock = clock
        #: Seconds to open a connection (TCP, handshake, first PING) before Redis counts as down.
        self.socket_connect_timeout = positive_seconds("socket_connect_timeout", socket_connect_timeout)
        #: Seconds a command's reply may take before its connection counts as broken (an outage).
        self.command_timeout = positive_seconds("command_timeout", command_timeout)
        if (
            isinstance(random_prefix_length, bool)
            or not isinstance(random_prefix_length, int)
            or random_prefix_length < 0
        ):
            raise ValueError(f"random_prefix_length must be a whole number of bytes >= 0, got {random_prefix_length!r}")
        if (
            isinstance(presence_timeout, bool)
            or not isinstance(presence_timeout, (int, float))
            or presence_timeout <= 0
        ):
            raise ValueError(f"presence_timeout must be a positive number of seconds, got {presence_timeout!r}")
        #: Seconds after which the members of a process that stopped heartbeating are dropped.
        self.presence_timeout = presence_timeout
        self._policies = GroupPolicies(groups)
        if cluster is not None and hosts is not None:
            raise ValueError("Give either 'hosts' or 'cluster' in the channel layer's CONFIG, not both")
        #: The Redis Cluster's seed nodes (``cluster``), or None for ``hosts``.
        self.cluster = None if cluster is None else ClusterSeeds(cluster, prefix)
        self.hosts = [] if self.cluster is not None else decode_hosts(hosts)
        self.prefix = prefix
        self.keys = Keys(prefix, CLUSTER_SHARDS if self.cluster is not None else len(self.hosts))
        self.group_expiry = group_expiry
        #: Random bytes before each serialised message (list layer only; see ``serialize``).
        self.random_prefix_length = random_prefix_length
        self.serializer_format = serializer_format
        self._serializer = registry.get_serializer(
            serializer_format,
            symmetric_encryption_keys=symmetric_encryption_keys,
            random_prefix_length=random_prefix_length if self.prefixes_messages else 0,
            expiry=self.expiry,
        )
        #: The id in this layer instance's process-local channel names (``specific.<id>!...``).
        self.client_prefix = uuid.uuid4().hex[:PROCESS_ID_LENGTH]
        self._over_capacity_log = RateLimitedLog(logger, logging.INFO, OVER_CAPACITY_LOG_INTERVAL)
        #: Group deliveries dropped because the member's channel was full.
        self.dropped = 0
        #: Messages that could not be handed to Redis because it was unreachable (or, on the pub/sub
        #: layer, published to a group with members while no process was subscribed).
        self.lost = 0
        #: Messages read from Redis that could not be decoded (wrong key or format).
        self.rejected = 0
        self._states: dict[asyncio.AbstractEventLoop, State] = {}
        self._states_lock = threading.Lock()
        # Not at interpreter exit: loops are stopped by then, and asyncio.run cancels their tasks anyway.
        weakref.finalize(self, _release_when_collected, self._states, self._states_lock).atexit = False

    #: Whether ``serialize`` prepends ``random_prefix_length`` random bytes (the pub/sub layer does not).
    prefixes_messages = True

    # -- messages as bytes ------------------------------------------------------------

    def serialize(self, message: Any) -> bytes:
        """The bytes stored in Redis for ``message`` (override to change the encoding).

        Every message, group message and presence record the layer writes goes through
        here, and every one it reads through ``deserialize``. ``TypeError`` naming the
        offending value's type if the message cannot be encoded.
        """
        serialized: bytes = self._serializer.serialize(message)
        return serialized

    def deserialize(self, data: bytes) -> Any:
        """The message in bytes ``serialize`` made; raises if they cannot be decrypted or decoded."""
        return self._serializer.deserialize(data)

    # -- per-loop state ---------------------------------------------------------------

    def _new_state(self, loop: asyncio.AbstractEventLoop) -> State:
        raise NotImplementedError

    def _state(self) -> State:
        loop = asyncio.get_running_loop()
        state = self._states.get(loop)
        if state is None:
            with self._states_lock:
                for old in [old for old in self._states if old.is_closed()]:
                    del self._states[old]  # its sockets are released with it
                state = self._states[loop] = self._new_state(loop)
            _release_on_close(self, loop)
        return state

    def _new_links(self) -> list[ShardLink]:
        """One link per shard for a new loop: a host of ``hosts``, or a virtual shard of the cluster."""
        if self.cluster is not None:
            return self.cluster.links(weak_method(self._recovered), self.socket_connect_timeout, self.command_timeout)
        return [
            ShardLink(i, spec, weak_method(self._recovered), self.socket_connect_timeout, self.command_timeout)
            for i, spec in enumerate(self.hosts)
        ]

    def _shard(self, state: State, name: str) -> ShardLink:
        return state.links[shard_index(name, len(state.links))]

    @staticmethod
    def _ttl(seconds: float) -> int:
        return max(1, math.ceil(seconds))

    # -- incoming -----------------------------------------------------------------------

    def _decode(self, payload: bytes) -> dict[str, Any] | None:
        try:
            decoded: dict[str, Any] = self.deserialize(payload)
            return decoded
        except Exception as exc:  # a wrong key or format: the sender's problem, never the reader's end
            self._reject(exc)
            return None

    def _decode_group_message(self, frame: Frame) -> dict[str, Any] | None:
        """A group frame's message, stamped with ``_epoch`` / ``_offset`` when Redis numbered it."""
        message = self._decode(frame.payload)
        if message is not None and frame.seq:
            message["_epoch"], message["_offset"] = parse_seq(frame.seq)
        return message

    def _reject(self, exc: Exception) -> None:
        self.rejected += 1
        logger.error(
            "Dropped a message from Redis that could not be decoded (%s: %s); do all processes share the same "
            "symmetric_encryption_keys and serializer_format?",
            type(exc).__name__,
            exc,
        )

    def _file_membership(self, state: State, frame: Frame, now: float) -> None:
        """Apply a join or leave another process made for one of this loop's channels."""
        if frame.kind == JOIN:
            state.members.add(frame.target, frame.channel, now + self.group_expiry)
        elif frame.kind == LEAVE:
            state.members.discard(frame.target, frame.channel)

    def _fan_out(self, state: State, frame: Frame, now: float) -> None:
        """Give one group message to each of this loop's members of the group (decoded once)."""
        expires_at = frame.expires_ms / 1000
        members = state.members.live(frame.target, now)
        if not members:
            return
        if expires_at <= now:
            self._count_loss("expired", len(members))
            return
        message = self._decode_group_message(frame)
        if message is None:
            return
        missed = state.inboxes.deliver_many(members, Item(expires_at, message, False))
        if missed:
            self.dropped += missed
            self._count_loss("channel_full", missed)
            self._over_capacity(frame.target, missed, len(members), message.get("type"))

    def _over_capacity(self, group: str, missed: int, total: int, kind: Any) -> None:
        """Log (INFO, at most one line per group per interval) that full channels missed a group message."""
        self._over_capacity_log.log(
            group,
            "%s of %s channels over capacity in group %s; message %r dropped for them",
            missed,
            total,
            group,
            kind,
        )

    def _expired(self, state: State, channel: str, item: Item) -> None:
        """A queued message expired unread: counted as lost (the list layer also updates its counts)."""
        self._count_loss("expired")

    def _sweep(self, state: State, now: float) -> None:
        if now >= state.next_sweep:
            state.next_sweep = now + self.expiry / 2
            state.inboxes.sweep(now, lambda channel, item: self._expired(state, channel, item))

    # -- fastlane -----------------------------------------------------------------------

    def attach_direct(self, channel: str, sink: Sink) -> None:
        """Offer ``channel``'s messages to ``sink`` before waking its receiver of the running loop (fastlane).

        Call it in the loop that receives on ``channel``. ``sink(message)`` is called
        synchronously, in the loop filing the message, only while a receiver waits on
        ``channel`` in that loop; True means it delivered the message (received, as far
        as capacity goes), and the receiver keeps waiting. A second sink replaces the
        first. The sink must not call the layer.
        """
        self.require_valid_channel_name(channel)
        self._state().inboxes.attach(channel, sink, self._counted_taker())

    def detach_direct(self, channel: str, sink: Sink) -> None:
        """Stop offering ``channel``'s messages to ``sink``; nothing if another sink (or none) is attached."""
        inboxes = self._local_inboxes()
        if inboxes is not None:
            inboxes.detach(channel, sink)

    def _local_inboxes(self) -> Inboxes | None:
        """The inboxes of the running loop's channels (``None`` if it has no state here)."""
        loop = running_loop()
        state = None if loop is None else self._states.get(loop)
        return None if state is None else state.inboxes

    def _counted_taker(self) -> Callable[[str], None] | None:
        """What a sink that took a counted message off a channel calls (the list layer's receipt)."""
        return None  # only the list layer counts messages in Redis (it overrides this)

    # -- outages ------------------------------------------------------------------------

    def _count_lost(self, link: ShardLink, count: int = 1) -> None:
        """``count`` messages could not be handed to ``link``'s Redis (it is down)."""
        self.lost += count
        link.lost += count
        self._count_loss("outage", count)

    def _count_loss(self, cause: str, count: int = 1) -> None:
        """Export ``count`` lost messages in ``hubbub_messages_lost_total{layer, cause}``."""
        metrics.messages_lost.inc(type(self).__name__, cause, count)

    def _unavailable(self, link: ShardLink, exc: BaseException) -> RedisUnavailable:
        """The error a sender sees when ``link``'s Redis did not take its message (already counted)."""
        return RedisUnavailable(f"Redis {link.spec.label} is unavailable; the message was not sent ({exc})")

    def _recovered(self, link: ShardLink) -> None:
        """A shard is back: put this layer's channels back in their groups, and its presence members, there."""
        for state in list(self._states.values()):
            if link in state.links and not state.loop.is_closed():
                state.loop.create_task(self._rejoin(state, link)).add_done_callback(log_failure)
                if state.present:
                    state.loop.create_task(self._heartbeat(state, link.index)).add_done_callback(log_failure)

    async def _rejoin(self, state: State, link: ShardLink) -> None:
        raise NotImplementedError

    # -- groups, housekeeping -------------------------------------------------------------

    async def group_count(self, group: str) -> int:
        """How many channels are in ``group`` now, across all processes."""
        self.require_valid_group_name(group)
        state = self._state()
        link = self._shard(state, group)
        return int(await link.pipe.script("GROUP_COUNT", [self.keys.members(group)], [self.clock()]))

    async def _send_plain(self, state: State, group: str, message: dict[str, Any]) -> None:
        """``group_send`` without numbering or keeping (presence events)."""
        raise NotImplementedError

    # -- history ------------------------------------------------------------------------

    def history_policy(self, group: str) -> HistoryPolicy | None:
        """What history ``group`` keeps (from the ``groups`` config or ``configure_group``), or None."""
        return self._policies.policy(group)

    def configure_group(self, pattern: str, *, history: int | None = None, ttl: float | None = None) -> None:
        """Groups matching the glob ``pattern`` keep their last ``history`` messages and/or ``ttl`` seconds.

        Applies to this layer instance (give every process the same ``groups`` config);
        a group already kept is trimmed to the new policy on its next send or read.
        """
        self._policies.configure(pattern, history=history, ttl=ttl)

    def _history_args(self, policy: HistoryPolicy) -> list[Any]:
        """The script arguments saying how to keep a group's history (see ``record_in_history`` in scripts.py)."""
        ttl_ms = 0 if policy.ttl is None else max(1, round(policy.ttl * 1000))
        return [new_epoch(), policy.history or 0, ttl_ms, self._ttl(self.group_expiry), int(self.cluster is not None)]

    async def group_history(self, group: str, *, epoch: str | None = None, since: int = 0) -> HistoryAnswer:
        """What a subscriber that saw ``group`` up to ``(epoch, since)`` missed, read from the group's stream.

        ``{"epoch", "offset", "recovered", "messages"}`` as on the in-memory layer; a
        group whose history Redis lost has a new epoch, so old positions are not recovered.
        """
        self.require_valid_history_position(group, epoch, since)
        policy = self._policies.policy(group)
        if policy is None:
            return {"epoch": None, "offset": 0, "recovered": epoch is None, "messages": []}
        link = self._shard(self._state(), group)
        current, latest, held, entries = await link.pipe.script(
            "HISTORY",
            [self.keys.history(group), self.keys.position(group)],
            [*self._history_args(policy), "" if epoch is None else epoch, since],
        )
        current, latest = current.decode(), int(latest)
        messages = []
        for _, fields in reversed(entries):
            entry = dict(zip(fields[::2], fields[1::2], strict=False))
            message = self._decode(entry[b"m"])
            if message is not None:
                message["_epoch"], message["_offset"] = current, int(entry[b"o"])
                messages.append(message)
        return recovery(current, latest, latest - int(held) + 1, messages, epoch, since)

    # -- presence -----------------------------------------------------------------------

    async def presence_add(self, group: str, channel: str, *, user_id: Any = None, info: Any = None) -> PresenceMember:
        """Register ``channel`` as present in ``group`` (for every process) and send ``presence.join``.

        Adding again updates ``user_id`` and ``info``, keeps ``joined_at`` and announces
        again. This loop keeps the member alive by heartbeat until it is removed.
        """
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        data = self.serialize({"user_id": user_id, "info": info})
        state = self._state()
        reply = await self._shard(state, group).pipe.script(
            "PRESENCE_ADD", self.keys.presence(group), [channel, self.clock(), data, self._ttl(self.group_expiry)]
        )
        joined_at = float(reply)
        state.present.setdefault(group, {})[channel] = (joined_at, data)
        if state.heartbeat is None:
            state.heartbeat = state.loop.create_task(_heartbeat_forever(weakref.ref(self), state))
        member = PresenceMember(channel=channel, user_id=user_id, info=info, joined_at=joined_at)
        await self._send_plain(state, group, {"type": "presence.join", "group": group, "member": member})
        return PresenceMember(**member)

    async def presence_remove(self, group: str, channel: str) -> bool:
        """Unregister ``channel`` from ``group`` and send ``presence.leave``; False if it was not present.

        Remove a member from the process that added it: that process would otherwise put
        it back the next time Redis loses it and it heartbeats.
        """
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        state = self._state()
        mine = state.present.get(group)
        if mine is not None:
            mine.pop(channel, None)
            if not mine:
                del state.present[group]
        reply = await self._shard(state, group).pipe.script("PRESENCE_REMOVE", self.keys.presence(group), [channel])
        if reply is None:
            return False
        member = self._member(channel, *reply)
        if member is not None:
            await self._send_plain(state, group, {"type": "presence.leave", "group": group, "member": member})
        return True

    async def presence(self, group: str) -> list[PresenceMember]:
        """The members present in ``group`` across all processes, oldest first.

        Members whose process stopped heartbeating ``presence_timeout`` ago are dropped
        here (and their ``presence.leave`` sent) if nobody did it yet.
        """
        self.require_valid_group_name(group)
        state = self._state()
        gone, listed = await self._shard(state, group).pipe.script(
            "PRESENCE_LIST", self.keys.presence(group), [self.clock() - self.presence_timeout]
        )
        await self._announce_gone(state, group, gone)
        members = (self._member(*listed[i : i + 3]) for i in range(0, len(listed), 3))
        return [member for member in members if member is not None]

    def _member(self, channel: Any, joined_at: bytes | float, data: bytes) -> PresenceMember | None:
        """A member dict from what the presence scripts return (None if its data cannot be read)."""
        decoded = self._decode(data)
        if decoded is None:
            return None
        name = channel.decode() if isinstance(channel, bytes) else channel
        return PresenceMember(
            channel=name, user_id=decoded.get("user_id"), info=decoded.get("info"), joined_at=float(joined_at)
        )

    async def _announce_gone(self, state: State, group: str, gone: list[bytes]) -> None:
        """Send ``presence.leave`` for members aged out (flat channel, joined_at, data triples)."""
        for i in range(0, len(gone), 3):
            member = self._member(*gone[i : i + 3])
            if member is not None:
                await self._send_plain(state, group, {"type": "presence.leave", "group": group, "member": member})

    async def _heartbeat(self, state: State, shard: int | None = None) -> None:
        """One heartbeat for this loop's members (on one shard, or all): one pipelined write per shard.

        Announces members of dead processes it aged out, and members of this loop it had
        to put back (they had been announced as gone, or Redis lost them).
        """
        now = self.clock()
        member_ttl = self._ttl(self.group_expiry)
        sent = []
        for group, members in list(state.present.items()):
            link = self._shard(state, group)
            if shard is not None and link.index != shard:
                continue
            args: list[Any] = [now, now - self.presence_timeout, member_ttl]
            for channel, (joined_at, data) in members.items():
                args += [channel, joined_at, data]
            try:
                sent.append((group, await link.pipe.submit_script("PRESENCE_BEAT", self.keys.presence(group), args)))
            except CONNECTION_ERRORS:
                continue  # that shard is down: its members are written again when it is back
        for group, reply in sent:
            try:
                gone, back = await reply
            except CONNECTION_ERRORS + (ResponseError,):
                continue
            await self._announce_gone(state, group, gone)
            for channel in back:
                name = channel.decode()
                kept = state.present.get(group, {}).get(name)
                if kept is not None:
                    member = self._member(name, *kept)
                    await self._send_plain(state, group, {"type": "presence.join", "group": group, "member": member})

    # -- housekeeping -------------------------------------------------------------------

    async def flush(self) -> None:
        """Delete every key under this layer's prefix on every shard, and what is queued here."""
        state = self._state()
        state.present.clear()
        for link in state.links:
            cursor = 0
            while True:
                pattern = self.keys.pattern(link.index)  # one shard's keys: one slot on a cluster
                cursor, keys = await link.pipe.execute("SCAN", cursor, "MATCH", pattern, "COUNT", 1000)
                if keys:
                    await link.pipe.execute("UNLINK", *keys)
                if int(cursor) == 0:
                    break
        state.inboxes.clear()
        state.members.clear()

    async def close_pools(self) -> None:
        """Stop this loop's readers and close its connections (the layer stays usable)."""
        with self._states_lock:
            state = self._states.pop(asyncio.get_running_loop(), None)
        if state is not None:
            await release_state(state)

    async def close(self) -> None:
        """Same as ``close_pools()``."""
        await self.close_pools()

    def held(self) -> tuple[int, int]:
        """``(channels with queued messages or receivers, groups with members here)`` in this
        process: a public probe for tests that check memory stays bounded."""
        states = list(self._states.values())
        inboxes = {id(s.inboxes): s.inboxes for s in states}  # shared by the loops of a list layer
        members = {id(s.members): s.members for s in states}
        return sum(map(len, inboxes.values())), sum(map(len, members.values()))

    _stats = held  # the former private name, still used by tests on other branches

    def receivers_waiting(self, channel: str) -> int:
        """How many receivers wait on ``channel`` in this process, in any of its event loops: a
        public probe for tests that must know a receiver is listening before they send."""
        inboxes = {id(s.inboxes): s.inboxes for s in list(self._states.values())}
        return sum(box.waiting(channel) for box in inboxes.values())


async def _heartbeat_forever(layer_ref: weakref.ref[RedisLayerBase[Any]], state: LoopState) -> None:
    """A loop's heartbeat: refresh its presence members every third of ``presence_timeout``.

    Holds its layer weakly between beats, so it ends when the layer is collected.
    """
    while True:
        layer = layer_ref()
        if layer is None:
            return
        period = layer.presence_timeout / 3
        del layer
        await asyncio.sleep(period)
        layer = layer_ref()
        if layer is None:
            return
        try:
            await layer._heartbeat(state)
        except CONNECTION_ERRORS as exc:  # an announcement failed: Redis is down, the next beat retries
            logger.debug("presence heartbeat incomplete: %r", exc)
        del layer


def log_failure(future: asyncio.Future[Any]) -> None:
    """Done-callback for work nobody awaits: its failure is logged, not left unretrieved."""
    if not future.cancelled() and future.exception() is not None:
        logger.debug("background Redis work failed: %r", future.exception())

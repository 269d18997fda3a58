"""``RedisChannelLayer``: channels and groups in Redis lists, shared by every process.

Theory of operation (see ``protocol`` for the keys and frames):

* A worker channel (no ``!``) is a Redis list; ``send`` pushes, ``receive`` pops
  with ``BLPOP``, so each message reaches exactly one receiver.
* Process-local channels (``specific.P!x``) belong to the layer instance: ``P`` is its
  ``client_prefix``, whichever event loop called ``new_channel()``. They share one
  inbox list per shard, and the instance keeps one set of per-channel inboxes in
  memory (``local.Inboxes``) for all its loops. Each loop that receives on such a
  channel runs one reader task per shard, popping that list and filing messages into
  the shared inboxes; a receiver waiting in another loop (the server's, or an
  ``async_to_sync`` call's) is handed its message in its own loop. So a name made in
  one loop can be received in any other, and what no loop has read yet waits in Redis
  until expiry (or, once read, in the inboxes until a receiver comes). A ``send`` to
  a channel of this instance goes straight to the inboxes, without Redis. Receiving
  on another instance's process-local name is an error (``Wrong client prefix``).
* A group is stored twice: its member channels (for counting and ageing out) and
  its routes, one per process with members (plus worker channel members).
  ``group_send`` is one script run: one push per route, then each process fans the
  message out to its own members in memory.
* A group with history (``groups`` / ``configure_group``) is numbered and kept by
  the same script run (``GROUP_SEND_KEPT``): the stamp travels in the frame's
  ``seq`` field, so every process delivers the same ``_epoch`` / ``_offset``.
* Every command of a loop goes down one pipelined connection per shard
  (``connection.CommandPipe``): bounded, shared, ordered; ``send``/``group_send``
  are one round trip each.

Capacity is per channel: worker channels by their list length, process-local
channels by a per-channel count Redis keeps until the message is received (direct
sends from other processes), or by the inbox length here (sends from this process,
and group deliveries, dropped and counted in ``dropped`` when full). A message a
fastlane sink takes (``attach_direct``) counts as received: its receipt goes to Redis
as a receive's would.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
import weakref
from collections.abc import Callable
from typing import Any

from redis.exceptions import ResponseError

from ... import metrics
from ...exceptions import ChannelFull
from ...history import HistoryPolicy
from ..inbox import Inboxes, Item
from .common import LoopState, RedisLayerBase, log_failure, weak_capacity, weak_method
from .connection import CONNECTION_ERRORS, ShardLink, deadline
from .local import Members
from .protocol import (
    DIRECT,
    GROUP,
    JOIN,
    LEAVE,
    channel_route,
    frame_head,
    membership_frame,
    message_frame,
    parse_channel_route,
    parse_frame,
    process_of,
    process_route,
    shard_index,
)
from .scripts import SCRIPTS

logger = logging.getLogger("hubbub.layers.redis")

#: The most frames a process inbox holds in Redis. A live process empties its inbox
#: continuously, so only a dead one (whose routes have not aged out yet) reaches it.
INBOX_LIMIT = 10_000
#: Frames taken from an inbox per round trip when it has a backlog.
BATCH = 500
#: Seconds a worker channel's reader (and its connection) stays after its last receiver.
WORKER_LINGER = 1.0
#: Seconds a closing loop waits for Redis to acknowledge its last receipts.
RECEIPTS_TIMEOUT = 2.0
#: Seconds a stopped inbox reader waits for the reply of the pop it had in flight.
RESCUE_TIMEOUT = 2.0


class _ListState(LoopState):
    """Per-loop state of the list layer: inbox readers, worker channel readers, unsent receipts."""

    def __init__(self, layer: RedisChannelLayer, loop: asyncio.AbstractEventLoop):
        super().__init__(layer, loop, layer.client_prefix, layer._inboxes, layer._members)
        self.keys = layer.keys
        self.inbox_readers: list[asyncio.Task[Any]] = []
        self.worker_readers: dict[str, tuple[asyncio.Task[Any], asyncio.Event]] = {}
        self.receipts: dict[tuple[int, str, str], int] = {}
        self.receipts_due = False
        self.failed_discards: set[tuple[str, str]] = set()
        self.joining: dict[str, asyncio.Future[Any]] = {}  # group -> reply adding this process's route

    def tasks(self) -> list[asyncio.Task[Any]]:
        return [*super().tasks(), *self.inbox_readers, *(task for task, _ in self.worker_readers.values())]

    async def send_receipts(self) -> list[asyncio.Future[Any]]:
        """Tell Redis how many counted messages each channel gave up; the replies, not waited for."""
        replies = []
        for key in list(self.receipts):
            count = self.receipts.pop(key, 0)
            if not count:
                continue
            index, process, channel = key
            try:
                reply = await self.links[index].pipe.submit(
                    "EVAL", SCRIPTS["RECEIVED"], 1, self.keys.pending(process, index), channel, count
                )
            except CONNECTION_ERRORS:
                continue  # the counts expire with the messages in Redis anyway
            except asyncio.CancelledError:  # e.g. its loop is ending: kept for the state's last writes
                self.receipts[key] = self.receipts.get(key, 0) + count
                raise
            reply.add_done_callback(log_failure)
            replies.append(reply)
        return replies

    async def finish(self) -> None:
        # A short-lived loop (an async_to_sync call) may end right after a receive: its
        # receipts must still reach Redis, or the channel would stay full until expiry.
        replies = await self.send_receipts()
        if replies:
            await asyncio.wait(replies, timeout=RECEIPTS_TIMEOUT)


class RedisChannelLayer(RedisLayerBase[_ListState]):
    """A channel layer in Redis, accepting ``channels_redis.core.RedisChannelLayer``'s settings."""

    #: Seconds a blocking read waits on the server before looking again.
    blpop_timeout = 2

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        # The instance's process-local channels and group members, shared by all its loops.
        self._inboxes = Inboxes(weak_capacity(self))
        self._members = Members()

    def _new_state(self, loop: asyncio.AbstractEventLoop) -> _ListState:
        return _ListState(self, loop)

    # -- channels ---------------------------------------------------------------------

    async def new_channel(self, prefix: str = "specific") -> str:
        """A new process-local channel name of this layer instance, receivable from any of its event loops."""
        state = self._state()
        self._start_inbox_readers(state)
        return f"{prefix.rstrip('.')}.{state.process}!{uuid.uuid4().hex[:12]}"

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        """Queue ``message`` on ``channel``: ``ChannelFull`` if it is at capacity, ``TypeError`` if unencodable."""
        self.require_valid_message(message)
        self.require_valid_channel_name(channel)
        payload = self.serialize(message)
        state = self._state()
        expires_ms = int((self.clock() + self.expiry) * 1000)
        frame = message_frame(DIRECT, channel, expires_ms, payload)
        capacity, ttl = self.get_capacity(channel), self._ttl(self.expiry)
        process = process_of(channel)
        if process == state.process:
            # A channel of this very layer instance: hand it to the local inbox (capacity and
            # expiry are kept there) instead of a round trip to Redis and back. Decoding the
            # payload keeps what remote sends guarantee: the receiver gets its own copy.
            item = Item(expires_ms / 1000, self.deserialize(payload), False)
            if not state.inboxes.deliver(channel, item):
                raise ChannelFull(f"Channel {channel!r} is full ({capacity} messages waiting).")
            return
        if process is None:
            link = self._shard(state, channel)
            name, keys, args = "SEND_WORKER", [self.keys.channel(channel)], [frame, capacity, ttl]
        else:
            link = self._shard(state, self.non_local_name(channel))
            name = "SEND_DIRECT"
            keys = [self.keys.inbox(process, link.index), self.keys.pending(process, link.index)]
            args = [frame, channel, capacity, ttl]
        if state.receipts:
            await state.send_receipts()
        try:
            sent = await link.pipe.script(name, keys, args)
        except CONNECTION_ERRORS as exc:
            self._count_lost(link)
            raise self._unavailable(link, exc) from exc
        if not sent:
            raise ChannelFull(f"Channel {channel!r} is full ({capacity} messages waiting).")

    async def receive(self, channel: str) -> dict[str, Any]:
        """The next message on ``channel``, waiting for one if needed.

        Cancel-safe: the Redis reads happen in the layer's reader tasks, never in the
        caller, and a message handed over as the caller is cancelled stays queued here.
        ``AssertionError`` at once for a process-local name another layer instance made.
        """
        state = self._state()
        if channel not in state.inboxes:  # names already in use were checked when first seen
            self.require_valid_channel_name(channel)
            if "!" in channel and process_of(channel) != self.client_prefix:
                raise AssertionError(
                    f"Wrong client prefix: {channel!r} was not made by this layer instance's new_channel() "
                    f"(its names look like 'specific.{self.client_prefix}!...'), so it can never receive it"
                )
        if "!" in channel:
            self._start_inbox_readers(state)
        else:
            # Either runs after take() below has registered this receiver.
            reader = state.worker_readers.get(channel)
            if reader is None:
                wake = asyncio.Event()
                task = state.loop.create_task(_read_worker(weakref.ref(self), state, channel, wake))
                state.worker_readers[channel] = (task, wake)
            else:
                reader[1].set()
        item = await state.inboxes.take(channel, self.clock, lambda ch, it: self._expired(state, ch, it))
        if item.counted:
            self._receipt(state, channel)
        return item.message

    def _local_inboxes(self) -> Inboxes:
        return self._inboxes  # every loop's

    def _counted_taker(self) -> Callable[[str], None]:
        return weak_method(self._taken_counted)  # an inbox with a sink must not keep the layer alive

    def _taken_counted(self, channel: str) -> None:
        """A sink took a counted message: its receipt goes as a receive's (the running loop is the receiver's)."""
        self._receipt(self._state(), channel)

    def _expired(self, state: _ListState, channel: str, item: Item) -> None:
        super()._expired(state, channel, item)
        if item.counted:
            self._receipt(state, channel)

    def _receipt(self, state: _ListState, channel: str) -> None:
        """Note that a counted message left ``channel``; the counts go to Redis in one batch."""
        process = process_of(channel) or ""
        key = (shard_index(self.non_local_name(channel), len(state.links)), process, channel)
        state.receipts[key] = state.receipts.get(key, 0) + 1
        if not state.receipts_due:
            state.receipts_due = True
            state.loop.call_soon(self._schedule_receipts, state)

    def _schedule_receipts(self, state: _ListState) -> None:
        state.receipts_due = False
        if state.receipts and not state.loop.is_closed():
            state.loop.create_task(state.send_receipts())

    # -- readers ----------------------------------------------------------------------

    def _start_inbox_readers(self, state: _ListState) -> None:
        if not state.inbox_readers:
            layer_ref = weakref.ref(self)
            state.inbox_readers = [state.loop.create_task(_read_inbox(layer_ref, state, link)) for link in state.links]

    def _file_frames(self, state: _ListState, frames: list[bytes]) -> None:
        """File frames popped from this instance's inbox, then drop what expired unread."""
        now = self.clock()
        for data in frames:
            self._dispatch(state, data, now)
        self._sweep(state, now)

    def _dispatch(self, state: _ListState, data: bytes, now: float) -> None:
        """File one frame from the process inbox."""
        try:
            frame = parse_frame(data)
        except ValueError as exc:
            self._reject(exc)
            return
        if frame.kind == DIRECT:
            expires_at = frame.expires_ms / 1000
            message = self._decode(frame.payload) if expires_at > now else None
            if message is None:
                if expires_at <= now:
                    self._count_loss("expired")
                self._receipt(state, frame.target)
            else:
                state.inboxes.deliver(frame.target, Item(expires_at, message, True))
        elif frame.kind == GROUP:
            self._fan_out(state, frame, now)
        else:
            self._file_membership(state, frame, now)

    def _file_worker_frame(self, state: _ListState, channel: str, data: bytes) -> None:
        try:
            frame = parse_frame(data)
        except ValueError as exc:
            self._reject(exc)
            return
        expires_at = frame.expires_ms / 1000
        message = self._decode_group_message(frame) if expires_at > self.clock() else None
        if message is not None:
            state.inboxes.deliver(channel, Item(expires_at, message, False), force=True)

    async def _give_back(self, state: _ListState, channel: str) -> None:
        """Return messages taken for receivers that went away to the head of the Redis list."""
        items = state.inboxes.drain(channel)
        if not items:
            return
        link = self._shard(state, channel)
        frames = [
            message_frame(DIRECT, channel, int(item.expires_at * 1000), self.serialize(item.message))
            for item in reversed(items)
        ]
        try:
            await link.pipe.execute("LPUSH", self.keys.channel(channel), *frames)
        except CONNECTION_ERRORS:
            self._count_lost(link, len(frames))

    # -- groups -----------------------------------------------------------------------

    async def group_add(self, group: str, channel: str) -> None:
        """Add ``channel`` to ``group`` (again: refreshes its expiry)."""
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        state = self._state()
        expires_at = self.clock() + self.group_expiry
        process = process_of(channel)
        own = process == state.process
        if not own:
            await (await self._group_add(state, group, channel, expires_at))
            return
        # This process's own channel. Group messages reach it once Redis has this process's
        # route for the group: the first local member waits for that (so a message sent
        # anywhere after group_add returns is delivered); later members only change the
        # fan-out table here, and their writes (for counts and expiry) are not waited for.
        # If Redis is unreachable the channel is added again when it is back.
        joining = state.joining.get(group)
        first = group not in state.members
        state.members.add(group, channel, expires_at)
        state.failed_discards.discard((group, channel))
        try:
            reply = await self._group_add(state, group, channel, expires_at)
        except CONNECTION_ERRORS:
            return
        reply.add_done_callback(log_failure)
        if first:
            joining = state.joining[group] = reply
        if joining is not None and not joining.done():
            try:
                await asyncio.shield(joining)
            except CONNECTION_ERRORS:
                pass
            finally:
                if state.joining.get(group) is joining:
                    del state.joining[group]

    async def _group_add(self, state: _ListState, group: str, channel: str, expires_at: float) -> asyncio.Future[Any]:
        """Write the GROUP_ADD script call; the returned future holds its reply."""
        process = process_of(channel)
        link = self._shard(state, group)
        announce, inbox = b"", self.keys.members(group)
        if process is None:
            route = channel_route(channel, self.get_capacity(channel))
        else:
            route = process_route(process)
            inbox = self.keys.inbox(process, link.index)
            if process != state.process:
                announce = membership_frame(JOIN, group, channel)
        return await link.pipe.submit_script(
            "GROUP_ADD",
            [self.keys.members(group), self.keys.routes(group), inbox],
            [channel, route, expires_at, self._ttl(self.group_expiry), announce, self._ttl(self.expiry)],
        )

    async def group_discard(self, group: str, channel: str) -> None:
        """Remove ``channel`` from ``group``; removing a non-member is not an error."""
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        state = self._state()
        if process_of(channel) != state.process:
            await (await self._group_discard(state, group, channel))
            return
        # This process's own channel: as in group_add, not waiting for the reply; if Redis
        # is unreachable the discard is done when it is back.
        try:
            reply = await self._group_discard(state, group, channel)
        except CONNECTION_ERRORS:
            state.failed_discards.add((group, channel))
            return
        reply.add_done_callback(lambda f: self._discard_done(state, group, channel, f))

    def _discard_done(self, state: _ListState, group: str, channel: str, reply: asyncio.Future[Any]) -> None:
        if not reply.cancelled() and isinstance(reply.exception(), CONNECTION_ERRORS):
            state.failed_discards.add((group, channel))

    async def _group_discard(self, state: _ListState, group: str, channel: str) -> asyncio.Future[Any]:
        """Write the GROUP_DISCARD script call; the returned future holds its reply."""
        process = process_of(channel)
        link = self._shard(state, group)
        route, announce, inbox = "", b"", self.keys.members(group)
        if process is None:
            route = channel_route(channel, self.get_capacity(channel))
        elif process == state.process:
            if state.members.discard(group, channel):
                route = process_route(process)
        else:
            announce, inbox = membership_frame(LEAVE, group, channel), self.keys.inbox(process, link.index)
        return await link.pipe.submit_script(
            "GROUP_DISCARD",
            [self.keys.members(group), self.keys.routes(group), inbox],
            [channel, route, announce, self._ttl(self.expiry)],
        )

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        """Deliver ``message`` to every member of ``group``: one script run on the group's shard.

        In a group with history the same run numbers and keeps it. ``TypeError`` here if
        the message cannot be encoded. Members whose channel is full miss it: counted in
        ``dropped`` and logged. If Redis is unreachable (or does not answer within
        ``command_timeout``) the message is counted in ``lost``, the outage logged once,
        and ``ChannelLayerUnavailable`` raised (a ``RedisUnavailable``).
        """
        self.require_valid_message(message)
        self.require_valid_group_name(group)
        metrics.count_group_send(group)
        payload = self.serialize(message)
        await self._send_to_group(self._state(), group, payload, message["type"], self._policies.policy(group))

    async def _send_plain(self, state: _ListState, group: str, message: dict[str, Any]) -> None:
        await self._send_to_group(state, group, self.serialize(message), message["type"], None)

    async def _send_to_group(
        self, state: _ListState, group: str, payload: bytes, kind: str, policy: HistoryPolicy | None
    ) -> None:
        now = self.clock()
        expires_ms = int((now + self.expiry) * 1000)
        link = self._shard(state, group)
        keys = [self.keys.routes(group), self.keys.members(group)]
        fan_out = [self.keys.inbox("", link.index), INBOX_LIMIT, self._ttl(self.expiry)]
        try:
            if policy is None:
                frame = message_frame(GROUP, group, expires_ms, payload)
                skipped, workers, routes = await link.pipe.script("GROUP_SEND", keys, [now, frame, *fan_out])
            else:
                skipped, workers, routes, seq = await link.pipe.script(
                    "GROUP_SEND_KEPT",
                    [*keys, self.keys.history(group), self.keys.position(group)],
                    [now, frame_head(GROUP, group, expires_ms), payload, *fan_out, *self._history_args(policy)],
                )
                frame = message_frame(GROUP, group, expires_ms, payload, seq)
        except CONNECTION_ERRORS as exc:
            self._count_lost(link)
            raise self._unavailable(link, exc) from exc
        missed = skipped
        if workers:
            missed += sum(await asyncio.gather(*(self._send_to_worker(state, route, frame) for route in workers)))
        if missed:
            # Full worker channels, or the inboxes of processes that stopped reading (dead ones).
            self.dropped += missed
            self._count_loss("channel_full", missed)
            self._over_capacity(group, missed, routes, kind)

    async def _send_to_worker(self, state: _ListState, route: bytes, frame: bytes) -> int:
        """Push a group message onto a worker channel member; 1 if it was full (a drop), else 0."""
        channel, capacity = parse_channel_route(route)
        link = self._shard(state, channel)
        try:
            sent = await link.pipe.script(
                "SEND_WORKER", [self.keys.channel(channel)], [frame, capacity, self._ttl(self.expiry)]
            )
        except CONNECTION_ERRORS:
            self._count_lost(link)
            return 0
        return 0 if sent else 1

    # -- outages ----------------------------------------------------------------------

    async def _rejoin(self, state: _ListState, link: ShardLink) -> None:
        """Redis is back: apply the discards it missed, then add this loop's members again (pipelined)."""
        count = len(state.links)
        replies = []
        for group, channel in list(state.failed_discards):
            if shard_index(group, count) == link.index:
                replies.append(await self._group_discard(state, group, channel))
                state.failed_discards.discard((group, channel))
        rejoined = 0
        for group, channel, expires_at in state.members:
            if shard_index(group, count) == link.index:
                replies.append(await self._group_add(state, group, channel, expires_at))
                rejoined += 1
        await asyncio.gather(*replies)
        if rejoined:
            logger.info("Re-added %d channel(s) to their groups on Redis %s", rejoined, link.spec.label)

    # -- housekeeping -----------------------------------------------------------------

    async def flush(self) -> None:
        """Delete every key under this layer's prefix on every shard, and what is queued here."""
        await super().flush()
        self._state().receipts.clear()


# The readers hold their layer weakly while they wait on Redis, so a layer nobody uses
# any more is collected (and its loops' states released) even while its loops run.


async def _read_inbox(layer_ref: weakref.ref[RedisChannelLayer], state: _ListState, link: ShardLink) -> None:
    """Move the instance's frames from its inbox on ``link`` into the in-memory inboxes."""
    layer = layer_ref()
    if layer is None:
        return
    key, timeout = layer.keys.inbox(state.process, link.index), layer.blpop_timeout
    del layer
    popper = _InboxPopper(link)
    many_at_once = True  # BLMPOP (Redis 7+) waits for and takes a batch in one round trip
    try:
        while True:
            if many_at_once:
                try:
                    frames = await popper.pop("BLMPOP", timeout, 1, key, "LEFT", "COUNT", BATCH)
                except ResponseError:  # Redis 6.2: BLPOP, then LPOP what else is waiting
                    many_at_once = False
                    continue
            else:
                frames = await popper.pop("BLPOP", key, timeout)
                if frames:
                    frames += await popper.pop("LPOP", key, BATCH)
            _file_frames(layer_ref, state, frames)
    except asyncio.CancelledError:
        # This loop is ending (or close_pools): a pop Redis already served must not be lost,
        # since every loop of the instance shares the inbox.
        _file_frames(layer_ref, state, await popper.stop())
        raise
    finally:
        await popper.close()


def _file_frames(layer_ref: weakref.ref[RedisChannelLayer], state: _ListState, frames: list[bytes]) -> None:
    layer = layer_ref()
    if layer is not None:  # else the frames go with the layer that owned the channels
        layer._file_frames(state, frames)


class _InboxPopper:
    """A connection of its own popping a process inbox, that can be stopped without losing a served pop.

    Closing a connection whose blocking pop Redis has just served loses what it popped.
    So ``stop()`` (the reader is cancelled: its loop ends, as every ``async_to_sync``
    call's does) unblocks the pop from another connection (``CLIENT UNBLOCK``) and reads
    its reply, which holds nothing, or the frames popped.
    """

    def __init__(self, link: ShardLink):
        self.link = link
        self.connection: Any | None = None
        self.client_id: int | None = None  # read with the first pop's reply
        self.in_flight: str | None = None  # the command whose reply is unread

    async def pop(self, command: str, *args: Any) -> list[bytes]:
        """The frames the pop returns; none after a failure (reported, then waited out)."""
        try:
            if self.connection is None:
                self.connection = await self.link.connect()
                self.client_id = None
                # Sent with the first pop, not waited for: costs no round trip.
                await self.connection.send_command("CLIENT", "ID", check_health=False)
            self.in_flight = command
            await self.connection.send_command(command, *args, check_health=False)
            try:
                await self._read_client_id()
                reply = await self.connection.read_response(disconnect_on_error=False)
            except ResponseError as exc:  # an answer all the same (Redis 6.2 lacks BLMPOP)
                self.in_flight = None
                if self.link.redirected(exc):  # a cluster slot moved or is moving: read it again there
                    await self.close()
                    await self.link.wait_to_retry()
                    return []
                raise
            self.in_flight = None
            if self.link.down_since is not None:
                self.link.succeeded()  # the shard answers (its outage began on another connection)
            return _frames(command, reply)
        except CONNECTION_ERRORS as exc:
            self.in_flight = None
            if self.connection is not None:
                self.link.failed(exc)
                await self.close()
            await self.link.wait_to_retry()
            return []

    async def stop(self) -> list[bytes]:
        """The frames of the pop in flight, if Redis served it (none if it was still waiting)."""
        command, connection, self.in_flight = self.in_flight, self.connection, None
        if command is None or connection is None:
            return []
        try:
            async with deadline(RESCUE_TIMEOUT):
                reply = await self._unblock(command, connection)
        except CONNECTION_ERRORS + (ResponseError, asyncio.TimeoutError):
            return []
        return _frames(command, reply)

    async def _unblock(self, command: str, connection: Any) -> Any:
        await self._read_client_id()
        if command != "LPOP":  # a blocking pop: make Redis answer it now
            helper = await self.link.connect()
            try:
                await helper.send_command("CLIENT", "UNBLOCK", self.client_id, check_health=False)
                await helper.read_response()
            finally:
                await helper.disconnect(nowait=True)
        return await connection.read_response(disconnect_on_error=False)

    async def _read_client_id(self) -> None:
        if self.client_id is None and self.connection is not None:
            self.client_id = int(await self.connection.read_response(disconnect_on_error=False))

    async def close(self) -> None:
        connection, self.connection = self.connection, None
        if connection is not None:
            await connection.disconnect(nowait=True)


def _frames(command: str, reply: Any) -> list[bytes]:
    """The frames in a BLMPOP, BLPOP or LPOP reply (``None`` when nothing was popped)."""
    if reply is None:
        return []
    if command == "BLMPOP":
        return list(reply[1])
    if command == "BLPOP":
        return [reply[1]]
    return list(reply)


async def _read_worker(
    layer_ref: weakref.ref[RedisChannelLayer], state: _ListState, channel: str, wake: asyncio.Event
) -> None:
    """Pop ``channel``'s list for this loop's receivers; stop after ``WORKER_LINGER`` s without any."""
    layer = layer_ref()
    if layer is None:
        return
    key, timeout, link = layer.keys.channel(channel), layer.blpop_timeout, layer._shard(state, channel)
    del layer
    caller = link.blocking_caller()
    try:
        while True:
            if not state.inboxes.waiting(channel):
                wake.clear()  # nobody to hand a message to: pop nothing until a receiver comes
                try:
                    async with deadline(WORKER_LINGER):
                        await wake.wait()
                except asyncio.TimeoutError:
                    return
                continue
            reply = await caller.call("BLPOP", key, timeout)
            layer = layer_ref()
            if layer is None:
                return
            if reply is not None:
                layer._file_worker_frame(state, channel, reply[1])
            del layer
    finally:
        if state.worker_readers.get(channel, (None,))[0] is asyncio.current_task():
            del state.worker_readers[channel]
        await caller.close()
        layer = layer_ref()
        if layer is not None and not state.inboxes.waiting(channel):
            await layer._give_back(state, channel)

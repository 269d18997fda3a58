"""``RedisChannelLayer``: channels and groups in Redis lists, shared by every process.

Theory of operation (see ``protocol`` for the keys and frames):

* A worker channel (no ``!``) is a Redis list; ``send`` pushes, ``receive`` pops
  with ``BLPOP``, so each message reaches exactly one receiver.
* Process-local channels (``specific.P!x``) of one process and event loop share one
  inbox list per shard, read by one task per shard, which files messages into
  per-channel inboxes in memory (``local.Inboxes``). A ``send`` to a channel of this
  same process and loop goes straight to that inbox, without Redis.
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
and group deliveries, dropped and counted in ``dropped`` when full).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Dict, List, Optional, Set, Tuple

from redis.exceptions import ResponseError

from ...exceptions import ChannelFull
from ...history import HistoryPolicy
from .common import LoopState, RedisLayerBase, retrieve
from .connection import CONNECTION_ERRORS, ShardLink
from .local import Item
from .protocol import (
    DIRECT, GROUP, JOIN, LEAVE, channel_route, frame_head, membership_frame, message_frame, parse_channel_route,
    parse_frame, process_of, process_route, shard_index,
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


class _ListState(LoopState):
    """Per-loop state of the list layer: inbox readers, worker channel readers, unsent receipts."""

    def __init__(self, layer: "RedisChannelLayer", loop: asyncio.AbstractEventLoop):
        super().__init__(layer, loop)
        self.inbox_readers: List[asyncio.Task] = []
        self.worker_readers: Dict[str, Tuple[asyncio.Task, asyncio.Event]] = {}
        self.receipts: Dict[Tuple[int, str, str], int] = {}
        self.receipts_due = False
        self.failed_discards: Set[Tuple[str, str]] = set()
        self.joining: Dict[str, asyncio.Future] = {}  # group -> reply adding this process's route

    def tasks(self) -> List[asyncio.Task]:
        return [*super().tasks(), *self.inbox_readers, *(task for task, _ in self.worker_readers.values())]


class RedisChannelLayer(RedisLayerBase[_ListState]):
    """A channel layer in Redis, accepting ``channels_redis.core.RedisChannelLayer``'s settings."""

    #: Seconds a blocking read waits on the server before looking again.
    blpop_timeout = 2

    def _new_state(self, loop: asyncio.AbstractEventLoop) -> _ListState:
        return _ListState(self, loop)

    # -- channels ---------------------------------------------------------------------

    async def new_channel(self, prefix: str = "specific") -> str:
        """A new process-local channel name; its messages arrive through this process's inbox."""
        state = self._state()
        self._start_inbox_readers(state)
        return f"{prefix.rstrip('.')}.{state.process}!{uuid.uuid4().hex[:12]}"

    async def send(self, channel: str, message: dict) -> None:
        """Queue ``message`` on ``channel``: ``ChannelFull`` if it is at capacity, ``TypeError`` if unencodable."""
        self.require_valid_message(message)
        self.require_valid_channel_name(channel)
        payload = self.serializer.dumps(message)
        state = self._state()
        expires_ms = int((time.time() + self.expiry) * 1000)
        frame = message_frame(DIRECT, channel, expires_ms, payload)
        capacity, ttl = self.get_capacity(channel), self._ttl(self.expiry)
        process = process_of(channel)
        if process == state.process:
            # A channel of this very process and loop: hand it to the local inbox (capacity and
            # expiry are kept there) instead of a round trip to Redis and back. Decoding the
            # payload keeps what remote sends guarantee: the receiver gets its own copy.
            item = Item(expires_ms / 1000, self.serializer.loads(payload), False)
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
            await self._send_receipts(state)
        try:
            sent = await link.pipe.script(name, keys, args)
        except CONNECTION_ERRORS as exc:
            self._count_lost(link)
            raise self._unavailable(link, exc) from exc
        if not sent:
            raise ChannelFull(f"Channel {channel!r} is full ({capacity} messages waiting).")

    async def receive(self, channel: str) -> dict:
        """The next message on ``channel``, waiting for one if needed.

        Cancel-safe: the Redis reads happen in the layer's reader tasks, never in the
        caller, and a message handed over as the caller is cancelled stays queued here.
        """
        state = self._state()
        if channel not in state.inboxes:  # names already in use were checked when first seen
            self.require_valid_channel_name(channel)
        if "!" in channel:
            self._start_inbox_readers(state)
        else:
            # Either runs after take() below has registered this receiver.
            reader = state.worker_readers.get(channel)
            if reader is None:
                wake = asyncio.Event()
                task = state.loop.create_task(self._read_worker(state, channel, wake))
                state.worker_readers[channel] = (task, wake)
            else:
                reader[1].set()
        item = await state.inboxes.take(channel, time.time, lambda ch, it: self._expired(state, ch, it))
        if item.counted:
            self._receipt(state, channel)
        return item.message

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
            state.loop.create_task(self._send_receipts(state))

    async def _send_receipts(self, state: _ListState) -> None:
        """Tell Redis how many counted messages each channel gave up (not waiting for replies)."""
        receipts, state.receipts = state.receipts, {}
        for (index, process, channel), count in receipts.items():
            try:
                reply = await state.links[index].pipe.submit(
                    "EVAL", SCRIPTS["RECEIVED"], 1, self.keys.pending(process, index), channel, count
                )
            except CONNECTION_ERRORS:
                continue  # the counts expire with the messages in Redis anyway
            reply.add_done_callback(retrieve)

    # -- readers ----------------------------------------------------------------------

    def _start_inbox_readers(self, state: _ListState) -> None:
        if not state.inbox_readers:
            state.inbox_readers = [state.loop.create_task(self._read_inbox(state, link)) for link in state.links]

    async def _read_inbox(self, state: _ListState, link: ShardLink) -> None:
        """Move this process's frames from its inbox on ``link`` into the in-memory inboxes."""
        key = self.keys.inbox(state.process, link.index)
        caller = link.blocking_caller()
        many_at_once = True  # BLMPOP (Redis 7+) waits for and takes a batch in one round trip
        try:
            while True:
                frames: List[bytes] = []
                if many_at_once:
                    try:
                        reply = await caller.call("BLMPOP", self.blpop_timeout, 1, key, "LEFT", "COUNT", BATCH)
                    except ResponseError:  # Redis 6.2: BLPOP, then LPOP what else is waiting
                        many_at_once = False
                        continue
                    if reply is not None:
                        frames = reply[1]
                else:
                    reply = await caller.call("BLPOP", key, self.blpop_timeout)
                    if reply is not None:
                        frames = [reply[1], *(await caller.call("LPOP", key, BATCH) or ())]
                now = time.time()
                for data in frames:
                    self._dispatch(state, data, now)
                self._sweep(state, now)
        finally:
            await caller.close()

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

    async def _read_worker(self, state: _ListState, channel: str, wake: asyncio.Event) -> None:
        """Pop ``channel``'s list for this loop's receivers; stop after ``WORKER_LINGER`` s without any."""
        key = self.keys.channel(channel)
        caller = self._shard(state, channel).blocking_caller()
        try:
            while True:
                if not state.inboxes.waiting(channel):
                    wake.clear()  # nobody to hand a message to: pop nothing until a receiver comes
                    try:
                        await asyncio.wait_for(wake.wait(), WORKER_LINGER)
                    except asyncio.TimeoutError:
                        return
                    continue
                reply = await caller.call("BLPOP", key, self.blpop_timeout)
                if reply is not None:
                    self._file_worker_frame(state, channel, reply[1])
        finally:
            if state.worker_readers.get(channel, (None,))[0] is asyncio.current_task():
                del state.worker_readers[channel]
            await caller.close()
            if not state.inboxes.waiting(channel):
                await self._give_back(state, channel)

    def _file_worker_frame(self, state: _ListState, channel: str, data: bytes) -> None:
        try:
            frame = parse_frame(data)
        except ValueError as exc:
            self._reject(exc)
            return
        expires_at = frame.expires_ms / 1000
        message = self._decode_group_message(frame) if expires_at > time.time() else None
        if message is not None:
            state.inboxes.deliver(channel, Item(expires_at, message, False), force=True)

    async def _give_back(self, state: _ListState, channel: str) -> None:
        """Return messages taken for receivers that went away to the head of the Redis list."""
        items = state.inboxes.drain(channel)
        if not items:
            return
        link = self._shard(state, channel)
        frames = [
            message_frame(DIRECT, channel, int(item.expires_at * 1000), self.serializer.dumps(item.message))
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
        expires_at = time.time() + self.group_expiry
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
        reply.add_done_callback(retrieve)
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

    async def _group_add(self, state: _ListState, group: str, channel: str, expires_at: float) -> asyncio.Future:
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

    def _discard_done(self, state: _ListState, group: str, channel: str, reply: asyncio.Future) -> None:
        if not reply.cancelled() and isinstance(reply.exception(), CONNECTION_ERRORS):
            state.failed_discards.add((group, channel))

    async def _group_discard(self, state: _ListState, group: str, channel: str) -> asyncio.Future:
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

    async def group_send(self, group: str, message: dict) -> None:
        """Deliver ``message`` to every member of ``group``: one script run on the group's shard.

        In a group with history the same run numbers and keeps it. ``TypeError`` here if
        the message cannot be encoded. Members whose channel is full miss it: counted in
        ``dropped`` and logged. If Redis is unreachable (or does not answer within
        ``command_timeout``) the message is counted in ``lost``, the outage logged once,
        and ``ChannelLayerUnavailable`` raised (a ``RedisUnavailable``).
        """
        self.require_valid_message(message)
        self.require_valid_group_name(group)
        payload = self.serializer.dumps(message)
        await self._send_to_group(self._state(), group, payload, message["type"], self._policies.policy(group))

    async def _send_plain(self, state: _ListState, group: str, message: dict) -> None:
        await self._send_to_group(state, group, self.serializer.dumps(message), message["type"], None)

    async def _send_to_group(
        self, state: _ListState, group: str, payload: bytes, kind: str, policy: Optional[HistoryPolicy]
    ) -> None:
        now = time.time()
        expires_ms = int((now + self.expiry) * 1000)
        link = self._shard(state, group)
        keys = [self.keys.routes(group), self.keys.members(group)]
        fan_out = [self.keys.inbox("", link.index), INBOX_LIMIT, self._ttl(self.expiry)]
        try:
            if policy is None:
                frame = message_frame(GROUP, group, expires_ms, payload)
                skipped, workers = await link.pipe.script("GROUP_SEND", keys, [now, frame, *fan_out])
            else:
                skipped, workers, seq = await link.pipe.script(
                    "GROUP_SEND_KEPT", [*keys, self.keys.history(group), self.keys.position(group)],
                    [now, frame_head(GROUP, group, expires_ms), payload, *fan_out, *self._keep_args(policy)],
                )
                frame = message_frame(GROUP, group, expires_ms, payload, seq)
        except CONNECTION_ERRORS as exc:
            self._count_lost(link)
            raise self._unavailable(link, exc) from exc
        missed = skipped
        if workers:
            missed += sum(await asyncio.gather(*(self._send_to_worker(state, route, frame) for route in workers)))
        if missed:
            self.dropped += missed
            self._count_loss("channel_full", missed)
            logger.warning(
                "group_send to %r: %d member channel(s) or process inbox(es) full; message %r dropped for them",
                group, missed, kind,
            )

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

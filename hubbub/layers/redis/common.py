"""What both Redis layers share: settings, per-event-loop state, decoding and group fan-out."""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
import uuid
from typing import Any, Dict, Generic, List, Optional, Sequence, Tuple, TypeVar

from ..base import BaseChannelLayer
from .connection import HostConfig, ShardLink, decode_hosts
from .local import Inboxes, Item, Members
from .protocol import JOIN, LEAVE, Frame, Keys, shard_index
from .serializers import Serializer

logger = logging.getLogger("hubbub.layers.redis")


class LoopState:
    """What a layer holds for one event loop: its process id, shard links, inboxes, members.

    Connections and futures belong to one loop, so each loop (a server's, or the
    short-lived one of each ``async_to_sync`` call) gets its own; the states of
    loops that have closed are dropped.
    """

    def __init__(self, layer: "RedisLayerBase[Any]", loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.process = uuid.uuid4().hex[: max(layer.random_prefix_length, 8)]
        self.links = [ShardLink(i, spec, layer._recovered) for i, spec in enumerate(layer.hosts)]
        self.inboxes = Inboxes(layer.get_capacity)
        self.members = Members()
        self.next_sweep = time.time() + layer.expiry / 2

    def tasks(self) -> List[asyncio.Task]:
        """The background tasks to stop when the state is closed."""
        return []


State = TypeVar("State", bound=LoopState)


class RedisLayerBase(BaseChannelLayer, Generic[State]):
    """Settings, state and fan-out shared by ``RedisChannelLayer`` and ``RedisPubSubChannelLayer``."""

    extensions = ["groups", "flush"]

    def __init__(
        self,
        hosts: Optional[Sequence[HostConfig]] = None,
        prefix: str = "asgi",
        expiry: float = 60,
        group_expiry: float = 86400,
        capacity: int = 100,
        channel_capacity: Optional[Dict[str, int]] = None,
        symmetric_encryption_keys: Optional[Sequence[Any]] = None,
        random_prefix_length: int = 12,
        serializer_format: str = "msgpack",
    ):
        super().__init__(expiry=expiry, capacity=capacity, channel_capacity=channel_capacity)
        self.hosts = decode_hosts(hosts)
        self.prefix = prefix
        self.keys = Keys(prefix)
        self.group_expiry = group_expiry
        self.random_prefix_length = random_prefix_length
        self.serializer = Serializer(serializer_format, symmetric_encryption_keys)
        #: Group deliveries dropped because the member's channel was full.
        self.dropped = 0
        #: Messages that could not be handed to Redis because it was unreachable.
        self.lost = 0
        #: Messages read from Redis that could not be decoded (wrong key or format).
        self.rejected = 0
        self._states: Dict[asyncio.AbstractEventLoop, State] = {}
        self._states_lock = threading.Lock()

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
        return state

    def _shard(self, state: State, name: str) -> ShardLink:
        return state.links[shard_index(name, len(state.links))]

    @staticmethod
    def _ttl(seconds: float) -> int:
        return max(1, math.ceil(seconds))

    # -- incoming -----------------------------------------------------------------------

    def _decode(self, payload: bytes) -> Optional[dict]:
        try:
            return self.serializer.loads(payload)
        except Exception as exc:  # a wrong key or format: the sender's problem, never the reader's end
            self._reject(exc)
            return None

    def _reject(self, exc: Exception) -> None:
        self.rejected += 1
        logger.error(
            "Dropped a message from Redis that could not be decoded (%s: %s); do all processes share the same "
            "symmetric_encryption_keys and serializer_format?", type(exc).__name__, exc,
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
        if not members or expires_at <= now:
            return
        message = self._decode(frame.payload)
        if message is None:
            return
        item = Item(expires_at, message, False)
        missed = sum(1 for channel in members if not state.inboxes.deliver(channel, item))
        if missed:
            self.dropped += missed
            logger.warning(
                "group_send to %r: %d member channel(s) full; message %r dropped for them",
                frame.target, missed, message.get("type"),
            )

    def _expired(self, state: State, channel: str, item: Item) -> None:
        """A queued message expired unread (hook: the list layer updates its counts)."""

    def _sweep(self, state: State, now: float) -> None:
        if now >= state.next_sweep:
            state.next_sweep = now + self.expiry / 2
            state.inboxes.sweep(now, lambda channel, item: self._expired(state, channel, item))

    # -- outages ------------------------------------------------------------------------

    def _count_lost(self, link: ShardLink, count: int = 1) -> None:
        self.lost += count
        link.lost += count

    def _recovered(self, link: ShardLink) -> None:
        """A shard is back: put this layer's channels back in their groups there."""
        for state in list(self._states.values()):
            if link in state.links and not state.loop.is_closed():
                state.loop.create_task(self._rejoin(state, link)).add_done_callback(retrieve)

    async def _rejoin(self, state: State, link: ShardLink) -> None:
        raise NotImplementedError

    # -- groups, housekeeping -------------------------------------------------------------

    async def group_count(self, group: str) -> int:
        """How many channels are in ``group`` now, across all processes."""
        self.require_valid_group_name(group)
        state = self._state()
        link = self._shard(state, group)
        return int(await link.pipe.script("GROUP_COUNT", [self.keys.members(group)], [time.time()]))

    async def flush(self) -> None:
        """Delete every key under this layer's prefix on every shard, and what is queued here."""
        state = self._state()
        for link in state.links:
            cursor = 0
            while True:
                cursor, keys = await link.pipe.execute("SCAN", cursor, "MATCH", self.keys.pattern(), "COUNT", 1000)
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
        if state is None:
            return
        tasks = state.tasks()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for link in state.links:
            await link.close()

    async def close(self) -> None:
        """Same as ``close_pools()``."""
        await self.close_pools()

    def _stats(self) -> Tuple[int, int]:
        """(channels with queued messages or receivers, groups with members here), for memory tests."""
        states = list(self._states.values())
        return sum(len(s.inboxes) for s in states), sum(len(s.members) for s in states)


def retrieve(future: asyncio.Future) -> None:
    """Done-callback for work nobody awaits: its failure is logged, not left unretrieved."""
    if not future.cancelled() and future.exception() is not None:
        logger.debug("background Redis work failed: %r", future.exception())

"""Both Redis layers on a Redis Cluster: ``CONFIG = {"cluster": ["redis://node:7000", ...]}``.

Theory of operation. The layers see a cluster as ``CLUSTER_SHARDS`` virtual shards,
each one hash tag (so one slot, see ``protocol.shard_tags``): every script touches
the keys of one shard, so it runs on one node, as on a single host. What is new is
where a shard's commands go:

* ``ClusterRouter`` (one per event loop) keeps the slot map, read with ``CLUSTER
  SLOTS`` from any known node or seed, and one ``CommandPipe`` per master node: all
  of a loop's commands to that node go down one pipelined connection, whichever
  virtual shard they belong to. redis-py's ``RedisCluster`` client is not used on
  this path because it sends each command on its own pooled connection and waits
  for it, which would cost the hot path (``group_send``: one pipelined script call)
  a connection checkout and a round trip per call; its slot helper (``key_slot``)
  and its error classes are used.
* ``RoutedPipe`` is a shard's ``pipe``: it routes each command by the slot of its
  first key (the shard's own slot for keyless commands such as ``SCAN``) and turns
  ``PUBLISH`` into ``SPUBLISH`` (sharded pub/sub). Replies ``MOVED`` (slot map
  updated, full refresh in the background), ``ASK`` (``ASKING`` then the command on
  the importing node), ``TRYAGAIN``, ``CLUSTERDOWN`` and a script refused for a key
  that is being migrated (the scripts read before they write, so a refused script
  changed nothing) are retried, for at most ``RETRY_FOR`` seconds; then they fail
  as a connection error, so callers count the message as lost.
* A node that cannot be reached fails the commands sent to it (counted in ``lost``
  by the layers, as for one host: a command whose connection broke may or may not
  have run, so it is not repeated) and makes the router re-read the slot map, with
  backoff, until a replica has been promoted. Each virtual shard keeps its outage
  state like a host's ``ShardLink``: when it answers again (on the new master) the
  layer adds this loop's group members and presence members back there, since the
  promoted replica may lack the last writes. One error is logged per outage per
  loop, and one line when every shard answers again, with the messages lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from redis.asyncio.connection import Connection, ConnectionPool
from redis.crc import key_slot
from redis.exceptions import AskError, AuthenticationError, ClusterDownError, MovedError, ResponseError, TryAgainError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .connection import (
    COMMAND_TIMEOUT,
    CONNECT_TIMEOUT,
    CONNECTION_ERRORS,
    BlockingCaller,
    CommandPipe,
    ShardLink,
    _connection_options,
    _hide_password,
    deadline,
    open_connection,
)
from .protocol import shard_tags
from .scripts import SCRIPTS, SHAS

logger = logging.getLogger("hubbub.layers.redis")

#: Virtual shards on a cluster: enough to spread over a dozen masters, few enough that
#: a process's inbox readers (one blocking connection per shard) stay cheap.
CLUSTER_SHARDS = 16
#: Seconds a command keeps following redirects / waiting out CLUSTERDOWN before it fails.
RETRY_FOR = 5.0
#: Seconds between two reads of the slot map (more often only after a MOVED).
REFRESH_EVERY = 0.1

Address = tuple[str, int]


def _retryable(exc: BaseException) -> bool:
    """A reply meaning "not run here, try again": redirects, a slot in flux, a cluster between masters."""
    if isinstance(exc, (AskError, TryAgainError, ClusterDownError)):
        return True
    if isinstance(exc, ResponseError):
        text = str(exc)
        return "non local key" in text or text.startswith(("MASTERDOWN", "READONLY", "UNBLOCKED"))
    return False


def command_slot(args: Sequence[Any]) -> int | None:
    """The slot a command's first key is in, or ``None`` for a command without keys."""
    name = str(args[0]).upper()
    if name in ("EVAL", "EVALSHA"):
        return key_slot(_bytes(args[3])) if int(args[2]) > 0 else None
    if name in ("SCAN", "PING", "ASKING", "CLUSTER", "INFO") or len(args) < 2:
        return None
    return key_slot(_bytes(args[1]))


def _bytes(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


class ClusterSeeds:
    """The ``cluster`` setting: seed node URLs; credentials and TLS come from the first."""

    def __init__(self, urls: Sequence[str], prefix: str):
        if isinstance(urls, (str, bytes)) or not isinstance(urls, (list, tuple)) or not urls:
            raise ValueError(f"'cluster' must be a non-empty list of redis:// or rediss:// node URLs, got {urls!r}")
        self.addresses: list[Address] = []
        for url in urls:
            parts = urlsplit(url) if isinstance(url, str) else None
            if parts is None or parts.scheme not in ("redis", "rediss") or not parts.hostname:
                raise ValueError(
                    f"Each entry of 'cluster' must be a redis:// or rediss:// URL with a host, got {url!r}"
                )
            if parts.path not in ("", "/", "/0"):
                raise ValueError(f"A Redis Cluster has only database 0; drop {parts.path!r} from {url!r} in 'cluster'")
            self.addresses.append((parts.hostname, parts.port or 6379))
        if "{" in prefix or "}" in prefix:
            raise ValueError(f"On a Redis Cluster 'prefix' must not contain braces (they are hash tags): {prefix!r}")
        self.template = urlsplit(urls[0])
        self.label = ", ".join(_hide_password(url) for url in urls)
        #: The last slot map any loop read, and every node in it: a new loop (each ``async_to_sync``
        #: call has one) starts from these instead of asking the cluster again.
        self.slots: list[Address | None] | None = None
        self.known: list[Address] = []

    def pool(self, address: Address, connect_timeout: float = CONNECT_TIMEOUT) -> ConnectionPool:
        """A connection factory for one node, with the seeds' credentials and TLS."""
        userinfo = self.template.netloc.rpartition("@")[0]
        netloc = f"{userinfo}@{address[0]}:{address[1]}" if userinfo else f"{address[0]}:{address[1]}"
        url = urlunsplit((self.template.scheme, netloc, "", self.template.query, ""))
        return ConnectionPool.from_url(url, **_connection_options({}, connect_timeout))

    def links(
        self,
        on_recovered: Callable[[ShardLink], None],
        connect_timeout: float = CONNECT_TIMEOUT,
        command_timeout: float = COMMAND_TIMEOUT,
    ) -> list[ShardLink]:
        """The virtual shards of a new event loop, sharing one router."""
        router = ClusterRouter(self, connect_timeout, command_timeout)
        return [ClusterShardLink(index, router, on_recovered) for index in range(CLUSTER_SHARDS)]


def probe(seeds: ClusterSeeds, timeout: float = 5.0) -> None:
    """Read the slot map once, from synchronous code (``manage.py check``).

    ``ValueError`` for a seed that is not a cluster node or refuses the credentials,
    a connection error when no node answers within ``timeout``.
    """
    failure: list[BaseException] = []

    async def read() -> None:
        router = ClusterRouter(seeds)
        try:
            async with deadline(timeout):
                await router.refresh()
        finally:
            await router.close()

    def run() -> None:  # a thread of its own: the caller may be inside a running event loop
        try:
            asyncio.run(read())
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=run, name="hubbub-cluster-probe")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]


class _Label:
    def __init__(self, label: str):
        self.label = label


class _Node:
    """One node as the router's pipes see it: a connection factory; failures make the map stale."""

    def __init__(self, router: ClusterRouter, address: Address):
        self.router, self.address = router, address
        self.connect_timeout, self.command_timeout = router.connect_timeout, router.command_timeout
        self.pool = router.seeds.pool(address, self.connect_timeout)
        self.label = f"cluster node {address[0]}:{address[1]}"
        self.spec = _Label(self.label)  # what the pipe names in its errors
        self.pipe = CommandPipe(self)  # type: ignore[arg-type]

    async def connect(self, scripts: bool = True) -> Connection:
        """A new connection; for the pipe (``scripts``) with every script loaded first.

        A replica promoted in a failover has no scripts cached: loading them here keeps a
        ``NOSCRIPT`` retry from sending a script call after commands issued later.
        """
        try:
            connection = await open_connection(self.pool, self.label, self.connect_timeout)
        except AuthenticationError as exc:
            raise ValueError(f"Redis {self.label} refused the credentials in 'cluster': {exc}") from exc
        except CONNECTION_ERRORS:
            self.router.stale()
            raise
        if scripts:
            try:
                async with deadline(self.command_timeout):
                    await _load_scripts(connection)
            except BaseException:
                await connection.disconnect(nowait=True)
                raise
        return connection

    def failed(self, exc: BaseException) -> None:
        self.router.stale()

    async def close(self) -> None:
        await self.pipe.close()
        await self.pool.disconnect()


async def _load_scripts(connection: Connection) -> None:
    """Load the scripts this node lacks (one round trip when it has them all)."""
    names = list(SHAS)
    await connection.send_command("SCRIPT", "EXISTS", *SHAS.values(), check_health=False)
    missing = [name for name, known in zip(names, await connection.read_response(), strict=False) if not int(known)]
    for name in missing:
        await connection.send_command("SCRIPT", "LOAD", SCRIPTS[name], check_health=False)
    for _ in missing:
        await connection.read_response()


class ClusterRouter:
    """One event loop's slot map and per-node pipes."""

    def __init__(
        self, seeds: ClusterSeeds, connect_timeout: float = CONNECT_TIMEOUT, command_timeout: float = COMMAND_TIMEOUT
    ):
        self.seeds = seeds
        self.connect_timeout, self.command_timeout = connect_timeout, command_timeout
        self.slots: list[Address | None] | None = None if seeds.slots is None else list(seeds.slots)
        self.nodes: dict[Address, _Node] = {}
        self.known: list[Address] = list(seeds.known)  # every node of the last map, masters first
        self._refreshing: asyncio.Future[Any] | None = None
        self.last_refresh = 0.0
        self.down: dict[int, float] = {}  # shard index -> when it went down
        self.lost = 0

    def node_at(self, address: Address) -> _Node:
        node = self.nodes.get(address)
        if node is None:
            node = self.nodes[address] = _Node(self, address)
        return node

    async def node(self, slot: int) -> _Node:
        """The node serving ``slot`` as master (the map is read first if there is none yet)."""
        if self.slots is None:
            await self.refresh()
        assert self.slots is not None
        address = self.slots[slot]
        if address is None:
            self.stale()
            raise RedisConnectionError(f"Redis cluster slot {slot} has no master at the moment")
        return self.node_at(address)

    def moved(self, slot: int, host: str, port: int) -> None:
        """A ``MOVED`` reply: the slot's new master, now; the rest of the map in the background."""
        if self.slots is not None:
            self.slots[slot] = (host, int(port))
        self.stale(force=True)

    def stale(self, force: bool = False) -> None:
        """Re-read the slot map in the background (at most every ``REFRESH_EVERY`` s unless forced)."""
        if self._refreshing is not None or self.slots is None:
            return
        if not force and time.monotonic() - self.last_refresh < REFRESH_EVERY:
            return
        task = asyncio.get_running_loop().create_task(self.refresh())
        task.add_done_callback(lambda done: done.cancelled() or done.exception())

    async def refresh(self) -> None:
        """Read the slot map from the first node that answers (known nodes, then the seeds)."""
        if self._refreshing is not None:
            return await asyncio.shield(self._refreshing)
        self._refreshing = done = asyncio.get_running_loop().create_future()
        try:
            self.slots = await self._read_map()
            self.seeds.slots, self.seeds.known = list(self.slots), list(self.known)
            done.set_result(None)
        except BaseException as exc:
            done.set_exception(exc)
            done.exception()
            raise
        finally:
            self._refreshing = None
            self.last_refresh = time.monotonic()

    async def _read_map(self) -> list[Address | None]:
        candidates = list(dict.fromkeys([*self.known, *self.seeds.addresses]))
        errors = []
        for address in candidates:
            try:
                reply = await self._cluster_slots(address)
            except CONNECTION_ERRORS as exc:
                errors.append(f"{address[0]}:{address[1]}: {exc}")
                continue
            return self._apply(reply, address)
        raise RedisConnectionError(f"No Redis cluster node answered ({'; '.join(errors)})")

    async def _cluster_slots(self, address: Address) -> Any:
        pool = self.seeds.pool(address, self.connect_timeout)
        connection: Connection | None = None
        try:
            connection = await open_connection(pool, f"{address[0]}:{address[1]}", self.connect_timeout)
            await connection.send_command("CLUSTER", "SLOTS", check_health=False)
            async with deadline(self.command_timeout):
                return await connection.read_response()
        except asyncio.TimeoutError:
            raise RedisTimeoutError(f"Redis {address[0]}:{address[1]} did not answer CLUSTER SLOTS in time") from None
        except AuthenticationError as exc:
            raise ValueError(
                f"Redis cluster node {address[0]}:{address[1]} refused the credentials in 'cluster': {exc}"
            ) from exc
        except ResponseError as exc:
            raise ValueError(
                f"{address[0]}:{address[1]} in 'cluster' is not a Redis Cluster node ({exc}); "
                "use 'hosts' for a single Redis or a Sentinel"
            ) from exc
        finally:
            if connection is not None:
                await connection.disconnect(nowait=True)
            await pool.disconnect()

    def _apply(self, reply: Any, asked: Address) -> list[Address | None]:
        slots: list[Address | None] = [None] * 16384
        masters: list[Address] = []
        replicas: list[Address] = []
        for entry in reply:
            start, end, master, *others = entry
            address = self._address(master, asked)
            masters.append(address)
            replicas.extend(self._address(other, asked) for other in others)
            for slot in range(int(start), int(end) + 1):
                slots[slot] = address
        self.known = list(dict.fromkeys([*masters, *replicas]))
        return slots

    @staticmethod
    def _address(node: Sequence[Any], asked: Address) -> Address:
        host = node[0].decode() if isinstance(node[0], bytes) else str(node[0])
        return (host if host and host != "?" else asked[0], int(node[1]))

    # -- outages, logged once per loop ------------------------------------------------

    def shard_down(self, link: ClusterShardLink, exc: BaseException) -> None:
        if not self.down:
            logger.error(
                "Lost a Redis cluster node (%s, shard %s); re-reading the slot map and retrying in the background",
                exc,
                link.spec.label,
            )
        self.down.setdefault(link.index, time.monotonic())
        self.stale()

    def shard_up(self, link: ClusterShardLink, lost: int) -> None:
        since = self.down.pop(link.index, None)
        self.lost += lost
        if since is not None and not self.down:
            lost, self.lost = self.lost, 0
            logger.warning(
                "Redis cluster reachable again after %.1f s; %d message(s) could not be sent meanwhile",
                time.monotonic() - since,
                lost,
            )

    async def close(self) -> None:
        nodes, self.nodes = list(self.nodes.values()), {}
        for node in nodes:
            await node.close()


class ClusterShardLink(ShardLink):
    """One virtual shard of a cluster for one loop: its pipe, blocking connections, outage state."""

    sharded = True

    def __init__(self, index: int, router: ClusterRouter, on_recovered: Callable[[ShardLink], None]):
        self.index, self.router = index, router
        self.connect_timeout, self.command_timeout = router.connect_timeout, router.command_timeout
        self.tag = shard_tags(CLUSTER_SHARDS)[index]
        self.slot = key_slot(self.tag.encode())
        self.spec = _Label(f"{{{self.tag}}} (slot {self.slot})")  # type: ignore[assignment]
        self.pipe = RoutedPipe(self, router)  # type: ignore[assignment]
        self._on_recovered = on_recovered
        self.down_since: float | None = None
        self.lost = 0
        self._failures = 0
        self._retry_at = 0.0
        self._back: asyncio.Future[Any] | None = None  # resolved when the current outage ends

    async def connect(self) -> Connection:
        """A new connection to the shard's master (for blocking reads and subscriptions)."""
        if self.down_since is not None and time.monotonic() < self._retry_at:
            if self.router.down:
                self.router.stale()
            raise RedisConnectionError(f"Redis cluster shard {self.spec.label} is unreachable; retrying shortly")
        try:
            node = await self.router.node(self.slot)
            connection = await node.connect(scripts=False)
        except CONNECTION_ERRORS as exc:
            self.failed(exc)
            raise
        self.succeeded()
        return connection

    def failed(self, exc: BaseException) -> None:
        self._failures += 1
        self._retry_at = time.monotonic() + self.backoff()
        if self.down_since is None:
            self.down_since = time.monotonic()
            self.router.shard_down(self, exc)
        else:
            self.router.stale()

    def succeeded(self) -> None:
        self._failures = 0
        if self.down_since is None:
            return
        self.down_since = None
        lost, self.lost = self.lost, 0
        back, self._back = self._back, None
        if back is not None and not back.done():
            back.set_result(None)
        self.router.shard_up(self, lost)
        self._on_recovered(self)

    def blocking_caller(self) -> BlockingCaller:
        return ClusterBlockingCaller(self)

    def redirected(self, exc: ResponseError) -> bool:
        """MOVED, ASK, TRYAGAIN...: the slot map is updated (or re-read); the caller reads again shortly."""
        if not _retryable(exc):
            return False
        if isinstance(exc, MovedError):
            self.router.moved(exc.slot_id, exc.host, exc.port)
        else:
            self.router.stale()
        return True

    async def close(self) -> None:
        await self.router.close()


class ClusterBlockingCaller(BlockingCaller):
    """A blocking connection to a shard's master that follows the slot when it moves."""

    async def call(self, *args: Any) -> Any:
        try:
            reply = await super().call(*args)
        except ResponseError as exc:
            if not self.link.redirected(exc):
                raise
            await self.close()
            await asyncio.sleep(0.05)
            return None
        if self.connection is not None and self.link.down_since is not None:
            self.link.succeeded()  # the shard answers (its outage began on another connection)
        return reply


class RoutedPipe:
    """A virtual shard's ``pipe``: each command to the master of its key's slot, redirects followed."""

    def __init__(self, link: ClusterShardLink, router: ClusterRouter):
        self.link, self.router = link, router

    async def execute(self, *args: Any) -> Any:
        return await (await self.submit(*args))

    async def script(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        return await (await self.submit_script(name, keys, args))

    async def submit(self, *args: Any) -> asyncio.Future[Any]:
        if args[0] == "PUBLISH":
            args = ("SPUBLISH", *args[1:])
        slot = command_slot(args)
        return await self._send(self.link.slot if slot is None else slot, lambda pipe: pipe.submit(*args))

    async def submit_script(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> asyncio.Future[Any]:
        slot = key_slot(_bytes(keys[0])) if keys else self.link.slot
        return await self._send(slot, lambda pipe: pipe.submit_script(name, keys, args))

    async def _send(self, slot: int, send: Callable[[CommandPipe], Any]) -> asyncio.Future[Any]:
        node: _Node | None = None
        try:
            node = await self.router.node(slot)
            reply = await send(node.pipe)
        except CONNECTION_ERRORS as exc:
            # Nothing was sent: if the map has changed meanwhile (a failover), send it to the new master.
            self.link.failed(exc)
            await self._refresh_quietly()
            if self.router.slots is None or self.router.slots[slot] in (None, node_address(node)):
                raise
            reply = await send((await self.router.node(slot)).pipe)
        result = asyncio.get_running_loop().create_future()
        reply.add_done_callback(lambda done: self._settle(done, result, slot, send))
        return result

    async def _refresh_quietly(self) -> None:
        if time.monotonic() - self.router.last_refresh < REFRESH_EVERY:
            return  # read very recently: a failover in progress is not hurried by asking again
        with contextlib.suppress(*CONNECTION_ERRORS):
            await self.router.refresh()

    def _settle(
        self, reply: asyncio.Future[Any], result: asyncio.Future[Any], slot: int, send: Callable[..., Any]
    ) -> None:
        if result.done():
            return
        if reply.cancelled():
            result.cancel()
            return
        exc = reply.exception()
        if exc is None:
            if self.link.down_since is not None:
                self.link.succeeded()
            result.set_result(reply.result())
        elif _retryable(exc):
            task = asyncio.get_running_loop().create_task(self._retry(exc, result, slot, send))
            task.add_done_callback(lambda done: done.cancelled() or done.exception())
        else:
            if isinstance(exc, CONNECTION_ERRORS):
                self.link.failed(exc)
            result.set_exception(exc)
            result.exception()

    async def _retry(
        self, exc: BaseException, result: asyncio.Future[Any], slot: int, send: Callable[..., Any]
    ) -> None:
        """Follow redirects and wait out a slot in flux, for at most ``RETRY_FOR`` seconds."""
        deadline = time.monotonic() + RETRY_FOR
        delay = 0.01
        while True:
            try:
                if isinstance(exc, MovedError):
                    self.router.moved(exc.slot_id, exc.host, exc.port)
                    reply = await send((await self.router.node(slot)).pipe)
                elif isinstance(exc, AskError):
                    pipe = self.router.node_at((exc.host, int(exc.port))).pipe
                    (await pipe.submit("ASKING")).add_done_callback(lambda done: done.cancelled() or done.exception())
                    reply = await send(pipe)
                else:
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 0.5)
                    self.router.stale()
                    reply = await send((await self.router.node(slot)).pipe)
                value = await reply
            except asyncio.CancelledError:
                result.cancel()
                raise
            except Exception as error:  # every outcome goes to the waiting caller
                if _retryable(error) and time.monotonic() < deadline and not result.done():
                    exc = error
                    continue
                if result.done():
                    return
                if _retryable(error):
                    error = RedisConnectionError(f"Redis cluster slot {slot} unavailable for {RETRY_FOR} s: {error}")
                if isinstance(error, CONNECTION_ERRORS):
                    self.link.failed(error)
                result.set_exception(error)
                result.exception()
                return
            if not result.done():
                if self.link.down_since is not None:
                    self.link.succeeded()
                result.set_result(value)
            return

    async def close(self) -> None:
        await self.router.close()


def node_address(node: _Node | None) -> Address | None:
    return None if node is None else node.address

"""Connections to the Redis shards: host settings, one shared command pipe per shard.

Every event loop gets its own ``ShardLink`` per shard (asyncio connections belong to
the loop that opened them). A link owns one ``CommandPipe``: every command of that
loop goes down one connection, written as soon as it is issued, with replies
matched to callers in order. So connection use is bounded whatever the load (a
thousand consumers leaving at once are a thousand commands on one socket, not a
thousand connections), and concurrent commands are pipelined for free. Blocking
reads (``BLPOP``, subscriptions) get connections of their own from ``connect()``.

A caller cancelled while waiting for its reply does not disturb the connection:
the reply is read and dropped. Outages are reported once per shard: the first
failure logs an error, the recovery logs how long it took and what was lost.

Deadlines. A Redis that accepts TCP but never answers (stopped, swapping, a
half-dead proxy) must not hang anyone. Opening a connection (TCP, redis-py's
handshake and one PING) has ``connect_timeout`` seconds; a command whose reply is
not back ``command_timeout`` seconds after it was written breaks its connection:
every caller waiting on it fails with redis-py's ``TimeoutError`` and the shard
counts as down (logged once, reconnected with backoff). Blocking reads (``BLPOP``,
subscriptions) have no deadline: waiting is their job.

Deadlines are ``deadline()`` blocks, never ``asyncio.wait_for``: before Python 3.12,
a task cancelled in the turn of the loop where the work ``wait_for`` waits on ends gets
the work's result instead of its ``CancelledError``. A subscriber stopped by
``close_pools()`` just as its connection answered would then carry on, reading forever,
and the close waiting for it would never end.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from redis.asyncio.connection import Connection, ConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ...exceptions import ChannelLayerUnavailable
from .scripts import SCRIPTS, SHAS
from .wire import encode_command

if sys.version_info >= (3, 11, 3):
    from asyncio import timeout as deadline  # type: ignore[attr-defined]  # (mypy checks as Python 3.10)
else:  # redis-py requires async-timeout on these versions (the same test as redis-py's)
    from async_timeout import timeout as deadline

logger = logging.getLogger("hubbub.layers.redis")

#: Errors meaning "the connection is gone", as opposed to an error reply to one command.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (RedisConnectionError, RedisTimeoutError, OSError, EOFError)

HostConfig = str | tuple[str, int] | list[Any] | dict[str, Any]


def _closed() -> RedisConnectionError:
    return RedisConnectionError("the channel layer closed this connection")


class RedisUnavailable(ChannelLayerUnavailable, RedisConnectionError):
    """A message could not be handed to Redis (unreachable, or not answering in time).

    Both hubbub's ``ChannelLayerUnavailable`` and redis-py's ``ConnectionError``, so
    code written against either (or against channels_redis) catches it.
    """

    def __repr__(self) -> str:
        # redis-py's __repr__ reads an attribute its __init__ sets, and the builtin
        # ConnectionError's __init__ runs here instead (it comes first in the MRO).
        return f"{type(self).__name__}({str(self)!r})"


#: Bytes packed for one shard but not yet written before new commands wait for the writer.
WRITE_BUFFER_LIMIT = 1 << 20

# Reconnect backoff: 50 ms doubling to 2 s, with jitter so processes do not stampede.
BACKOFF_FIRST, BACKOFF_MAX = 0.05, 2.0

#: Default deadlines, in seconds (redis-py's own default for both is "wait forever").
CONNECT_TIMEOUT, COMMAND_TIMEOUT = 5.0, 5.0


def positive_seconds(name: str, value: Any) -> float:
    """``value`` as a deadline in seconds; ``ValueError`` naming ``name`` if it is not a positive number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or value == float("inf"):
        raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
    return float(value)


class HostSpec:
    """One shard's address, as written in ``hosts``; builds a connection factory per loop."""

    def __init__(self, config: HostConfig):
        self.config = config
        if isinstance(config, str):
            self.kind, self.label = "url", _hide_password(config)
        elif isinstance(config, dict) and "sentinels" in config:
            if "master_name" not in config:
                raise ValueError(f"A Sentinel host needs 'master_name' as well as 'sentinels': {config!r}")
            self.kind, self.label = "sentinel", f"sentinel master {config['master_name']!r}"
        elif isinstance(config, dict):
            self.kind = "url" if "address" in config else "kwargs"
            self.label = (
                _hide_password(config["address"])
                if "address" in config
                else (f"{config.get('host', 'localhost')}:{config.get('port', 6379)}")
            )
        elif isinstance(config, (tuple, list)) and len(config) == 2:
            self.kind, self.label = "kwargs", f"{config[0]}:{config[1]}"
        else:
            raise ValueError(
                "Each entry of 'hosts' must be a redis:// or rediss:// URL, a (host, port) pair, a dict of "
                f"redis-py connection arguments or a Sentinel dict; got {config!r}"
            )

    def make_pool(self, connect_timeout: float = CONNECT_TIMEOUT) -> ConnectionPool:
        """A redis-py pool used only as a factory of connections configured for this host."""
        config = self.config

        if self.kind == "sentinel":
            from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool

            assert isinstance(config, dict)
            options = {k: v for k, v in config.items() if k not in ("sentinels", "master_name", "sentinel_kwargs")}
            options = _connection_options(options, connect_timeout)
            # redis-py leaves these constructors, make_connection() and connect() unannotated.
            sentinel = Sentinel(  # type: ignore[no-untyped-call]
                [tuple(s) for s in config["sentinels"]], sentinel_kwargs=config.get("sentinel_kwargs"), **options
            )
            return SentinelConnectionPool(config["master_name"], sentinel, **options)  # type: ignore[no-untyped-call]
        if isinstance(config, str):
            return ConnectionPool.from_url(config, **_connection_options({}, connect_timeout))
        if isinstance(config, dict):
            options = dict(config)
            address = options.pop("address", None)
            if address is not None:
                return ConnectionPool.from_url(address, **_connection_options(options, connect_timeout))
            return ConnectionPool(**_connection_options(options, connect_timeout))
        host, port = config
        return ConnectionPool(**_connection_options({"host": host, "port": port}, connect_timeout))


def decode_hosts(hosts: Sequence[HostConfig] | None) -> list[HostSpec]:
    """``hosts`` as written in settings (default: one server on localhost:6379)."""
    if hosts is None:
        hosts = [("localhost", 6379)]
    if isinstance(hosts, (str, dict)) or not hosts:
        raise ValueError(f"'hosts' must be a non-empty list of hosts, got {hosts!r}")
    return [HostSpec(host) for host in hosts]


def _connection_options(options: dict[str, Any], connect_timeout: float) -> dict[str, Any]:
    # The pipe and the blocking readers detect dead connections themselves (the pipe by
    # its command deadline); a socket timeout would cut blocking reads short, so it is
    # not used on these connections.
    options = {k: v for k, v in options.items() if k != "max_connections"}
    options["socket_timeout"] = None
    options.setdefault("socket_connect_timeout", connect_timeout)
    options["protocol"] = 2  # the readers parse RESP2 replies (pub/sub messages are plain replies there)
    return options


def _hide_password(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        rest = "***@" + rest.split("@", 1)[1]
    return scheme + sep + rest


async def open_connection(pool: ConnectionPool, label: str, timeout: float) -> Connection:
    """A new connection from ``pool`` that answered a PING, within ``timeout`` seconds.

    The PING makes "connected" mean "answering": a server that accepts TCP and then
    says nothing is an outage, not a recovery followed by a hang.
    """
    connection: Connection = pool.make_connection()  # type: ignore[no-untyped-call]  # redis-py: unannotated
    try:
        async with deadline(timeout):
            await _connect_and_ping(connection)
    except asyncio.TimeoutError:
        await _abandon(connection)
        raise RedisTimeoutError(f"Redis {label} did not answer within {timeout:g} s") from None
    except BaseException:
        await _abandon(connection)
        raise
    return connection


async def _connect_and_ping(connection: Connection) -> None:
    await connection.connect()  # type: ignore[no-untyped-call]  # redis-py: unannotated
    await connection.send_command("PING", check_health=False)
    await connection.read_response()


async def _abandon(connection: Connection) -> None:
    with contextlib.suppress(Exception):  # closing a half-open connection may fail in many ways; it is gone either way
        await connection.disconnect(nowait=True)


class ShardLink:
    """One event loop's view of one shard: its pipe, new connections, and outage state."""

    #: Whether pub/sub on this shard is sharded (``SSUBSCRIBE``: a Redis Cluster slot).
    sharded = False

    def __init__(
        self,
        index: int,
        spec: HostSpec,
        on_recovered: Callable[[ShardLink], None],
        connect_timeout: float = CONNECT_TIMEOUT,
        command_timeout: float = COMMAND_TIMEOUT,
    ):
        self.index, self.spec = index, spec
        self.connect_timeout, self.command_timeout = connect_timeout, command_timeout
        self.pool = spec.make_pool(connect_timeout)
        self.pipe = CommandPipe(self)
        self._on_recovered = on_recovered
        self.down_since: float | None = None
        self.lost = 0  # messages that could not be handed to this shard during the current outage
        self._failures = 0
        self._retry_at = 0.0
        self._back: asyncio.Future[Any] | None = None  # resolved when the current outage ends

    async def connect(self) -> Connection:
        """A new, connected connection of its own (for blocking reads)."""
        if self.down_since is not None and time.monotonic() < self._retry_at:
            raise RedisConnectionError(f"Redis {self.spec.label} is unreachable; retrying shortly")
        try:
            connection = await open_connection(self.pool, self.spec.label, self.connect_timeout)
        except CONNECTION_ERRORS as exc:
            self.failed(exc)
            raise
        self.succeeded()
        return connection

    def backoff(self) -> float:
        """Seconds to wait before the next connection attempt."""
        delay: float = min(BACKOFF_FIRST * 2 ** min(self._failures, 10), BACKOFF_MAX)
        return delay * random.uniform(0.5, 1.0)

    async def wait_to_retry(self) -> None:
        """Wait out the backoff, or less: until another connection of this link finds Redis back."""
        if self.down_since is None:
            await asyncio.sleep(self.backoff())
            return
        if self._back is None:
            self._back = asyncio.get_running_loop().create_future()
        await asyncio.wait([self._back], timeout=self.backoff())

    def failed(self, exc: BaseException) -> None:
        """Record a connection failure; logged once per outage."""
        self._failures += 1
        self._retry_at = time.monotonic() + self.backoff()
        if self.down_since is None:
            self.down_since = time.monotonic()
            logger.error("Lost connection to Redis %s (%s); reconnecting in the background", self.spec.label, exc)

    def succeeded(self) -> None:
        """Record a working connection; ends an outage (logged with what it cost)."""
        self._failures = 0
        if self.down_since is None:
            return
        took = time.monotonic() - self.down_since
        self.down_since = None
        lost, self.lost = self.lost, 0
        back, self._back = self._back, None
        if back is not None and not back.done():
            back.set_result(None)
        logger.warning(
            "Reconnected to Redis %s after %.1f s; %d message(s) could not be sent meanwhile",
            self.spec.label,
            took,
            lost,
        )
        self._on_recovered(self)

    def redirected(self, exc: ResponseError) -> bool:
        """Whether an error reply to a blocking read means "read it elsewhere" (a cluster slot moved)."""
        return False

    def blocking_caller(self) -> BlockingCaller:
        """A connection of its own for blocking reads on this shard."""
        return BlockingCaller(self)

    async def close(self) -> None:
        await self.pipe.close()
        await self.pool.disconnect()


class BlockingCaller:
    """A connection of its own for blocking commands (``BLPOP``), reconnecting with backoff."""

    def __init__(self, link: ShardLink):
        self.link = link
        self.connection: Connection | None = None

    async def call(self, *args: Any) -> Any:
        """The command's reply, or ``None`` after a failure (reported, then waited out)."""
        try:
            if self.connection is None:
                self.connection = await self.link.connect()
            await self.connection.send_command(*args, check_health=False)
            return await self.connection.read_response()
        except CONNECTION_ERRORS as exc:
            if self.connection is not None:
                self.link.failed(exc)
                await self.connection.disconnect(nowait=True)
                self.connection = None
            await self.link.wait_to_retry()
            return None

    async def close(self) -> None:
        if self.connection is not None:
            await self.connection.disconnect(nowait=True)
            self.connection = None


class CommandPipe:
    """All of one loop's commands to one shard, pipelined over one connection.

    A reader task stays on the connection while it is open, so a server going away
    is noticed at once, not by the next command. A watchdog timer checks the oldest
    unanswered command against its deadline; one timer per pipe, not one per command.
    """

    def __init__(self, link: ShardLink):
        self._link = link
        self._connection: Connection | None = None
        self._connecting: asyncio.Future[Any] | None = None
        self._waiting: deque[asyncio.Future[Any]] = deque()
        self._deadlines: deque[float] = deque()  # loop time by which each waiting reply is due
        self._watchdog: asyncio.TimerHandle | None = None
        self._reader: asyncio.Task[Any] | None = None
        self._outgoing: list[bytes] = []  # commands packed but not yet written
        self._outgoing_size = 0
        self._writing: asyncio.Task[Any] | None = None  # the task writing them, while there is one
        self._taken: asyncio.Future[Any] | None = None  # resolved when the writer takes the next batch

    async def execute(self, *args: Any) -> Any:
        """Send one command and return its reply."""
        return await (await self.submit(*args))

    async def submit(self, *args: Any) -> asyncio.Future[Any]:
        """Queue one command for sending; the returned future resolves to its reply.

        Commands issued in the same turn of the event loop go out in one write, in
        the order they were issued.
        """
        command = encode_command(args)  # a TypeError for a bool or an object, before anything is queued
        connection = self._connection
        if connection is None:
            connection = await self._connect()
        loop = asyncio.get_running_loop()
        reply = loop.create_future()
        timeout = self._link.command_timeout
        self._waiting.append(reply)
        self._deadlines.append(loop.time() + timeout)
        if self._watchdog is None:
            self._watchdog = loop.call_later(timeout, self._check_deadline)
        self._outgoing.append(command)
        self._outgoing_size += len(command)
        writing = self._writing
        if writing is None:
            self._writing = loop.create_task(self._write(connection))
        elif self._outgoing_size > WRITE_BUFFER_LIMIT:
            # Redis is not keeping up: wait until the writer, done with its last write, takes
            # what is queued, instead of buffering without bound; but not forever.
            taken = self._taken
            if taken is None:
                taken = self._taken = loop.create_future()
            await asyncio.wait([taken], timeout=timeout)
            if not taken.done():
                self._broken(connection, self._timed_out())
        return reply

    def _check_deadline(self) -> None:
        """The watchdog: break the connection if its oldest command is overdue, else look again then."""
        self._watchdog = None
        connection = self._connection
        if connection is None or not self._deadlines:
            return
        loop = asyncio.get_running_loop()
        overdue_in = self._deadlines[0] - loop.time()
        if overdue_in <= 0:
            self._broken(connection, self._timed_out())
        else:
            self._watchdog = loop.call_later(overdue_in, self._check_deadline)

    def _timed_out(self) -> RedisTimeoutError:
        link = self._link
        return RedisTimeoutError(f"Redis {link.spec.label} did not answer within {link.command_timeout:g} s")

    async def _write(self, connection: Connection) -> None:
        """Write what is queued, in one write per turn of the loop, until nothing is left.

        A task, started by the first command of a turn: the commands issued in the
        same turn go out together. redis-py's ``send_packed_command`` writes and then
        waits while the socket's buffer is full, so a slow Redis slows the writer, not
        the loop. What is queued belongs to the current connection: a broken one's
        queue was dropped with it.
        """
        try:
            while self._outgoing and self._connection is connection:
                if not connection.is_connected:  # send_packed_command would reconnect: this one is gone
                    self._broken(connection, _closed())
                    return
                chunks, self._outgoing, self._outgoing_size = self._outgoing, [], 0
                taken, self._taken = self._taken, None
                if taken is not None:
                    taken.set_result(None)
                await connection.send_packed_command(chunks, check_health=False)
        except CONNECTION_ERRORS as exc:
            self._broken(connection, exc)
        finally:
            if self._writing is asyncio.current_task():
                self._writing = None

    async def submit_script(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> asyncio.Future[Any]:
        """Send a script call now; the future resolves to its reply (re-sent in full if Redis lacks it)."""
        sent = await self.submit("EVALSHA", SHAS[name], len(keys), *keys, *args)
        result = asyncio.get_running_loop().create_future()

        def settle(reply: asyncio.Future[Any]) -> None:
            if result.done():
                return
            if reply.cancelled():
                result.cancel()
            elif isinstance(reply.exception(), NoScriptError):
                retry = asyncio.ensure_future(self.execute("EVAL", SCRIPTS[name], len(keys), *keys, *args))
                retry.add_done_callback(settle)
            elif reply.exception() is not None:
                result.set_exception(reply.exception())  # type: ignore[arg-type]
            else:
                result.set_result(reply.result())

        sent.add_done_callback(settle)
        return result

    async def script(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run the Lua script ``name`` (by its SHA; sent in full the first time Redis lacks it)."""
        try:
            return await self.execute("EVALSHA", SHAS[name], len(keys), *keys, *args)
        except NoScriptError:
            return await self.execute("EVAL", SCRIPTS[name], len(keys), *keys, *args)

    async def _connect(self) -> Connection:
        if self._connecting is not None:
            return await asyncio.shield(self._connecting)
        self._connecting = connecting = asyncio.get_running_loop().create_future()
        try:
            connection = await self._link.connect()
        except BaseException as exc:
            connecting.set_exception(exc)
            connecting.exception()  # marked retrieved; concurrent callers get it re-raised
            raise
        finally:
            self._connecting = None
        self._connection = connection
        self._reader = asyncio.get_running_loop().create_task(self._read_replies(connection))
        connecting.set_result(connection)
        return connection

    async def _read_replies(self, connection: Connection) -> None:
        waiting = self._waiting
        try:
            while True:
                try:
                    value: Any = await connection.read_response()
                except ResponseError as exc:
                    value = exc
                if not waiting:
                    raise RedisConnectionError(f"unexpected reply from Redis: {value!r:.80}")
                reply = waiting.popleft()
                self._deadlines.popleft()
                if reply.done():
                    continue  # its caller was cancelled: the reply is dropped, the stream stays in step
                if isinstance(value, ResponseError):
                    reply.set_exception(value)
                else:
                    reply.set_result(value)
        except asyncio.CancelledError:
            self._broken(connection, _closed(), report=False)
            raise
        except CONNECTION_ERRORS as exc:
            self._broken(connection, exc)

    def _broken(self, connection: Connection, exc: BaseException, report: bool = True) -> None:
        """Fail every waiting caller and forget the connection; the next command reconnects."""
        if self._connection is not connection:
            return
        self._connection = None
        self._outgoing, self._outgoing_size = [], 0
        reader, self._reader = self._reader, None
        if reader is not None and reader is not asyncio.current_task():
            reader.cancel()
        writing, self._writing = self._writing, None
        if writing is not None and writing is not asyncio.current_task():
            writing.cancel()
        taken, self._taken = self._taken, None
        if taken is not None:
            taken.set_result(None)  # its waiters find the connection broken: their replies fail
        if report:
            self._link.failed(exc)
        self._deadlines.clear()
        while self._waiting:
            reply = self._waiting.popleft()
            if not reply.done():
                reply.set_exception(exc)
                reply.exception()

    async def close(self) -> None:
        connection = self._connection
        if connection is not None:
            self._broken(connection, _closed(), report=False)
            await connection.disconnect()

"""uvicorn's sans-I/O WebSocket protocol, able to write one prepared frame to many sockets, and lighter.

``uvicorn --ws hubbub.uvicorn_ws:WebSocketProtocol`` (uvicorn's documented way of
choosing a protocol class; ``manage.py runserver`` and ``hubbub.gunicorn_worker`` use it).

Theory of operation. A group message forwarded unchanged to every member is the same
frame on every socket (``hubbub.frames``). This protocol puts one more ASGI extension in
each WebSocket scope::

    scope["extensions"]["hubbub.prepared_frames"] = {"write": write, "send": send}   # write(frame) -> bool

``write(frame)`` writes the frame's bytes to the transport at once and returns True
exactly when a ``websocket.send`` of ``frame.message`` would have been written at once:
the handshake is done, no close was sent or received, the client is connected and the
transport is not paused for writing (the client reads). Otherwise it writes nothing and
returns False; the caller sends the message the usual way, which waits or fails as
uvicorn's ``send`` does. Other servers do not offer the extension, so callers fall back
to ``websocket.send`` there.

Per-message compression (``--ws-per-message-deflate``, on by default in uvicorn, off in
hubbub's documented configurations) is negotiated with ``server_no_context_takeover``:
the server compresses every message from an empty window, so the compressed frame is
the same on every socket and is computed once per fan-out (``frame.deflated()``), and
messages sent the usual way, which websockets compresses, stay decodable in between.
A server without context takeover also keeps no compressor per connection.

Memory per idle connection (about 10 KiB less than uvicorn's protocol; scripts/ws_idle_memory.py
shows where the rest goes). Past the handshake a connection waits on its receive queue, for
writability and for its next keepalive ping:

* uvicorn's ``asyncio.Queue`` and ``asyncio.Event`` hold four deques (a deque allocates a
  block of 64 slots up front); ``_Inbox`` and ``_Flag`` do the same jobs with lists.
* uvicorn's attributes live in slots: past 30 names CPython stops sharing a class's dict
  keys and gives every instance a dict of its own.
* The parsed handshake (request and response headers) is emptied once answered; the
  scope's header pairs that most handshakes repeat (``host``, ``upgrade``, ``user-agent``...),
  header names, and the server's and clients' addresses are shared between connections,
  from bounded tables.
* Keepalive pings come from one timer per ``PING_TICK`` for all connections due then
  (``_PingWheel``), not one timer per connection: a ping leaves up to a tick late.

uvicorn internals. The names of uvicorn's ``WebSocketsSansIOProtocol`` this relies on (its
attributes, listed in ``__slots__``, and ``handle_connect``, ``start_keepalive``,
``schedule_ping``, ``stop_keepalive``, ``send_keepalive_ping``) are those of the releases in
``SUPPORTED_UVICORN``; importing this module under another release raises ``ImportError``
naming the range. tests/e2e/test_uvicorn_ws.py runs a real server on the lowest one too.
"""

from __future__ import annotations

import asyncio
import math
import weakref
from typing import Any

import uvicorn

SUPPORTED_UVICORN = ((0, 53), (0, 55))  # >=0.53,<0.55: the releases whose names are checked (pyproject.toml)


def _release(version: str) -> tuple[int, int]:
    try:
        major, minor = version.split(".")[:2]
        return int(major), int(minor)
    except ValueError:
        return (-1, -1)


def check_uvicorn_version(version: str) -> None:
    """Raise ``ImportError`` unless uvicorn ``version`` is one this module was written against."""
    (low_major, low_minor), (high_major, high_minor) = SUPPORTED_UVICORN
    if not SUPPORTED_UVICORN[0] <= _release(version) < SUPPORTED_UVICORN[1]:
        raise ImportError(
            f"hubbub.uvicorn_ws supports uvicorn >={low_major}.{low_minor},<{high_major}.{high_minor} "
            f"(it relies on names inside uvicorn's websockets-sansio protocol); uvicorn {version} is "
            "installed. Install a supported uvicorn, or run with uvicorn's own "
            "'--ws websockets-sansio' (hubbub then sends every frame the usual way)."
        )


check_uvicorn_version(uvicorn.__version__)

# Imported after the check: under another uvicorn these may be missing or differ.
from uvicorn.config import Config  # noqa: E402
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol  # noqa: E402
from uvicorn.server import ServerState  # noqa: E402
from websockets.extensions.base import Extension  # noqa: E402
from websockets.extensions.permessage_deflate import PerMessageDeflate, ServerPerMessageDeflateFactory  # noqa: E402
from websockets.http11 import Request  # noqa: E402
from websockets.protocol import State  # noqa: E402
from websockets.server import ServerProtocol  # noqa: E402

from .frames import DEFLATE_WINDOW_BITS, PreparedFrame  # noqa: E402

__all__ = ["EXTENSION", "SUPPORTED_UVICORN", "WebSocketProtocol", "check_uvicorn_version"]

#: The scope extension's key.
EXTENSION = "hubbub.prepared_frames"


class _Inbox:
    """What uvicorn's protocol uses of ``asyncio.Queue`` (unbounded): ``put_nowait``, ``get``, ``empty``."""

    __slots__ = ("_items", "_loop", "_waiters")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._items: list[Any] = []
        self._waiters: list[asyncio.Future[Any]] = []

    def empty(self) -> bool:
        return not self._items

    def put_nowait(self, item: Any) -> None:
        waiters = self._waiters
        while waiters:
            waiter = waiters.pop(0)
            if not waiter.done():
                waiter.set_result(item)
                return
        self._items.append(item)

    async def get(self) -> Any:
        if self._items:
            return self._items.pop(0)
        waiter = self._loop.create_future()
        self._waiters.append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():  # handed an item, then cancelled: keep it
                self._items.insert(0, waiter.result())
            raise
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)


class _Flag:
    """What uvicorn's protocol uses of ``asyncio.Event``: ``is_set``, ``set``, ``clear``, ``wait``."""

    __slots__ = ("_set", "_waiters")

    def __init__(self) -> None:
        self._set = True  # uvicorn's starts set: writable
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> bool:
        if self._set:
            return True
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        try:
            await waiter
            return True
        finally:
            if self._waiters is not None and waiter in self._waiters:
                self._waiters.remove(waiter)


#: Header values worth sharing between connections (the same on most handshakes); others
#: (``sec-websocket-key``, cookies, tokens) are per connection and only their names are shared.
_REPEATED_HEADERS = frozenset(
    [
        b"accept-encoding",
        b"accept-language",
        b"cache-control",
        b"connection",
        b"host",
        b"origin",
        b"pragma",
        b"sec-websocket-extensions",
        b"sec-websocket-protocol",
        b"sec-websocket-version",
        b"upgrade",
        b"user-agent",
        b"x-forwarded-proto",
    ]
)
#: Bounds of the tables below: past them nothing new is shared (clients choose what they send).
SHARED_MAX_ENTRIES = 1024
SHARED_MAX_VALUE = 256
_shared_headers: dict[tuple[bytes, bytes], tuple[bytes, bytes]] = {}
_shared_names: dict[bytes, bytes] = {}
_shared_addresses: dict[Any, Any] = {}


def _share(table: dict[Any, Any], value: Any) -> Any:
    """The equal value already in ``table`` (bounded), so that connections hold one copy."""
    shared = table.get(value)
    if shared is None:
        if len(table) >= SHARED_MAX_ENTRIES:
            return value
        table[value] = shared = value
    return shared


def share_headers(headers: list[tuple[bytes, bytes]]) -> None:
    """Replace, in place, header pairs and names equal to ones other connections hold by those."""
    for index, (name, value) in enumerate(headers):
        if name in _REPEATED_HEADERS and len(value) <= SHARED_MAX_VALUE:
            headers[index] = _share(_shared_headers, (name, value))
        else:
            headers[index] = (_share(_shared_names, name), value)


#: Keepalive pings are due on multiples of this many seconds (the interval rounded up).
PING_TICK = 0.5


class _PingWheel:
    """Keepalive pings of one event loop, due by tick: one timer per tick in use, not one per connection."""

    __slots__ = ("_buckets", "_loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._buckets: dict[float, set[WebSocketProtocol]] = {}

    def add(self, protocol: WebSocketProtocol, delay: float) -> float:
        """Ping ``protocol`` in ``delay`` seconds (up to a tick later); returns the key ``discard`` takes."""
        due = math.ceil((self._loop.time() + delay) / PING_TICK) * PING_TICK
        bucket = self._buckets.get(due)
        if bucket is None:
            bucket = self._buckets[due] = set()
            self._loop.call_at(due, self._ping, due)
        bucket.add(protocol)
        return due

    def discard(self, protocol: WebSocketProtocol, due: float) -> None:
        bucket = self._buckets.get(due)
        if bucket is not None:
            bucket.discard(protocol)

    def _ping(self, due: float) -> None:
        for protocol in self._buckets.pop(due, ()):
            try:
                protocol.send_keepalive_ping()
            except Exception:  # one connection's failure is its own; the others are still pinged
                protocol.logger.exception("Keepalive ping failed")


_wheels: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _PingWheel] = weakref.WeakKeyDictionary()


def _wheel(loop: asyncio.AbstractEventLoop) -> _PingWheel:
    wheel = _wheels.get(loop)
    if wheel is None:
        wheel = _wheels[loop] = _PingWheel(loop)
    return wheel


def _deflate_factory() -> ServerPerMessageDeflateFactory:
    # uvicorn's parameters (websockets_sansio_impl), plus no context takeover on the server's side.
    return ServerPerMessageDeflateFactory(
        server_no_context_takeover=True,
        server_max_window_bits=DEFLATE_WINDOW_BITS,
        client_max_window_bits=12,
        compress_settings={"memLevel": 5},
    )


def _deflates_shared(extensions: list[Extension]) -> bool | None:
    """Whether the prepared frame goes out compressed (True), as is (False), or not at all (None)."""
    deflate = extensions[0]
    if len(extensions) > 1 or not isinstance(deflate, PerMessageDeflate):
        return None  # unknown to hubbub.frames: only the usual send can encode for it
    # No context takeover on our side and a window at least as large: the shared compressed
    # frame decodes. Else an uncompressed message (RSV1 clear), always allowed.
    return bool(deflate.local_no_context_takeover and deflate.local_max_window_bits >= DEFLATE_WINDOW_BITS)


class WebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's websockets-sansio protocol with the ``hubbub.prepared_frames`` extension, lighter per connection."""

    # uvicorn's per-connection attributes, in slots rather than in the instance dict: over
    # 30 names, CPython (3.11+) stops sharing a class's dict keys and gives every instance
    # a dict of its own (about 1.5 KiB here). A name uvicorn adds goes to the dict as before.
    __slots__ = (
        "app",
        "app_state",
        "asgi_version",
        "client",
        "close_sent",
        "close_timeout",
        "close_timer",
        "config",
        "conn",
        "connections",
        "curr_msg_data_type",
        "default_headers",
        "disconnected",
        "frames",
        "handshake_complete",
        "handshake_initiated",
        "initial_response",
        "last_ping_rtt",
        "logger",
        "loop",
        "pending_ping_payload",
        "ping_interval",
        "ping_sent_at",
        "ping_timeout",
        "ping_timer",
        "pong_timer",
        "queue",
        "read_paused",
        "request",
        "response",
        "root_path",
        "scheme",
        "scope",
        "server",
        "tasks",
        "transport",
        "writable",
    )

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.queue = _Inbox(self.loop)  # type: ignore[assignment]  # duck-typed: the methods uvicorn calls
        self.writable = _Flag()  # type: ignore[assignment]
        if config.ws_per_message_deflate:
            self.conn = ServerProtocol(
                extensions=[_deflate_factory()], max_size=config.ws_max_size, logger=self.conn.logger
            )

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        # The listening address is the same for every connection, and clients' hosts repeat.
        self.server = _share(_shared_addresses, self.server)
        if self.client is not None:
            self.client = (_share(_shared_addresses, self.client[0]), self.client[1])

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        # The scope has what the application needs of the request. uvicorn keeps the parsed
        # request, and so does websockets' parser (a local of its generator): emptied here.
        event.headers.clear()
        self.request = None  # type: ignore[assignment]
        scope = getattr(self, "scope", None)
        if scope is not None and self.response.status_code == 101:
            share_headers(scope["headers"])
            scope["extensions"][EXTENSION] = {"write": self.write_prepared, "send": self.send}

    def start_keepalive(self) -> None:
        # Called once, right after the accepted handshake's response is written: uvicorn's
        # ``send`` does not read the response again.
        self.response = None  # type: ignore[assignment]
        super().start_keepalive()

    def schedule_ping(self) -> None:
        # uvicorn's: the next ping after the interval less the last round trip, by a shared timer.
        assert self.ping_interval is not None
        delay = max(0.0, self.ping_interval - self.last_ping_rtt)
        self.ping_timer = _wheel(self.loop).add(self, delay)  # type: ignore[assignment]  # its key, not a handle

    def stop_keepalive(self) -> None:
        due = self.ping_timer
        if due is not None:
            self.ping_timer = None
            _wheel(self.loop).discard(self, due)  # type: ignore[arg-type]
        super().stop_keepalive()

    def write_prepared(self, frame: PreparedFrame) -> bool:
        """Write ``frame`` now if a ``websocket.send`` of its message would be; else nothing, and False."""
        if (
            not self.handshake_complete
            or self.close_sent
            or self.disconnected
            or self.initial_response is not None
            or not self.writable.is_set()
            or self.conn.state is not State.OPEN
        ):
            return False
        transport = self.transport
        if transport.is_closing():
            return False
        extensions = self.conn.extensions
        if not extensions:
            transport.write(frame.data)
            return True
        deflate = _deflates_shared(extensions)
        if deflate is None:
            return False
        transport.write(frame.deflated() if deflate else frame.data)
        return True

"""A WebSocket client cut to the bone, for holding tens of thousands of sockets on one core.

Theory of operation. The scale scenario's clients only listen: they send the opening
handshake, then read server frames, which RFC 6455 §5.1 says are never masked. So a
frame is a two-byte header (FIN/opcode, then a 7-bit length, or 126/127 announcing a
16- or 64-bit length that follows) and its payload; ``data_received`` walks those
boundaries in the bytes it was given, keeps an incomplete tail for the next call, and
hands each text or binary payload to ``on_payload``. It answers pings (the server
drops a client that does not; a client frame must be masked, and a zero mask key is a
valid one that leaves the payload as it is) and stops at a close frame. Nothing else of
the protocol is needed, which is what makes a received frame cost a few microseconds
here against the tens a server spends sending it: the load generator must not be what
sets the latency it measures.

The handshake's ``Sec-WebSocket-Accept`` is not checked: the servers are ours, and a
``101`` status is proof enough that this is a WebSocket.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import Callable
from typing import cast

#: A fixed key (RFC 6455 §1.3's own example): the server's answer to it is not checked.
_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
_OP_TEXT, _OP_BINARY, _OP_CLOSE, _OP_PING = 0x1, 0x2, 0x8, 0x9
#: Pong with FIN set, and the mask bit set on its length byte (client frames are masked).
_PONG, _MASKED = 0x8A, 0x80
_ZERO_MASK = b"\x00\x00\x00\x00"
#: SO_LINGER on, zero seconds: closing sends a reset.
_LINGER_RESET = struct.pack("ii", 1, 0)
#: A handshake answer bigger than this is not one of our servers'.
MAX_RESPONSE_HEAD = 16384


def handshake(port: int, path: str) -> bytes:
    """The opening handshake request for ``ws://127.0.0.1:<port>/<path>``."""
    return (
        f"GET /{path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


class ListeningClient(asyncio.Protocol):
    """One listening WebSocket: ``opened`` resolves after the ``101``; payloads go to ``on_payload``."""

    def __init__(self, request: bytes, on_payload: Callable[[ListeningClient, bytes], None]) -> None:
        self.request = request
        self.on_payload = on_payload
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self.tail = b""
        self.open = False
        self.closed = False
        #: Bookkeeping for the owner: the next sequence number this client expects, and gaps seen.
        self.expected = 0
        self.missed = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass it
        self.transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(f"closed during the handshake ({exc or 'by the server'})"))

    def data_received(self, data: bytes) -> None:
        if self.tail:
            data = self.tail + data
            self.tail = b""
        if not self.open:
            data = self._handshake_answer(data)
        self._frames(data)

    def _handshake_answer(self, data: bytes) -> bytes:
        end = data.find(b"\r\n\r\n")
        if end < 0:
            if len(data) > MAX_RESPONSE_HEAD:
                self._fail(ConnectionError("no end to the handshake answer"))
            else:
                self.tail = data
            return b""
        status = data[: data.find(b"\r\n")]
        if b" 101 " not in status + b" ":
            self._fail(ConnectionError(f"handshake refused: {status.decode(errors='replace')}"))
            return b""
        self.open = True
        self.opened.set_result(None)
        return data[end + 4 :]

    def _fail(self, error: Exception) -> None:
        if not self.opened.done():
            self.opened.set_exception(error)
        if self.transport is not None:
            self.transport.abort()

    def _frames(self, data: bytes) -> None:
        size = len(data)
        at = 0
        while size - at >= 2:
            length = data[at + 1] & 0x7F
            start = at + 2
            if length == 126:
                if size - at < 4:
                    break
                length = int.from_bytes(data[at + 2 : at + 4], "big")
                start = at + 4
            elif length == 127:
                if size - at < 10:
                    break
                length = int.from_bytes(data[at + 2 : at + 10], "big")
                start = at + 10
            end = start + length
            if end > size:
                break
            opcode = data[at] & 0x0F
            if opcode in (_OP_TEXT, _OP_BINARY):
                self.on_payload(self, data[start:end])
            elif opcode == _OP_PING and self.transport is not None and length < 126:
                self.transport.write(bytes((_PONG, _MASKED | length)) + _ZERO_MASK + data[start:end])
            elif opcode == _OP_CLOSE:
                self.closed = True
                if self.transport is not None:
                    self.transport.abort()
                return
            at = end
        if at < size:
            self.tail = data[at:]

    def abort(self) -> None:
        """Drop the connection at once, with a reset (no TIME_WAIT left behind on this side)."""
        if self.transport is None:
            return
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
        self.transport.abort()

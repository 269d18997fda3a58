"""WebSocket frames encoded once, for writing the same message to many sockets.

Theory of operation. A group message that every member forwards unchanged becomes
the same bytes on every member's socket: a server's data frame is not masked
(RFC 6455 §5.1), so nothing in it depends on the connection. ``prepare(message)``
turns one ASGI ``websocket.send`` message into a ``PreparedFrame`` holding those
bytes (``data``: FIN set, opcode text or binary, the payload length in 7, 16 or
64 bits as §5.2 lays out) next to the message itself, which a server without
the prepared-frames extension is sent instead (``hubbub.uvicorn_ws`` is one with it).

Per-message compression (RFC 7692) keeps a frame shareable only when the server
starts every message from an empty window ("no context takeover"); then the
compressed form is also the same for every socket. ``deflated()`` computes it on
first use and keeps it: raw DEFLATE over a window of ``DEFLATE_WINDOW_BITS``, the
final empty block ``00 00 ff ff`` of the sync flush removed (§7.2.1), RSV1 set on
the frame. A socket whose negotiated window is smaller gets ``data``: an
uncompressed message is always allowed on a compressed connection (RSV1 clear).

Sans-IO: nothing here touches a socket or an event loop.
"""

from __future__ import annotations

import struct
import zlib
from typing import Any

from .typing import Message

__all__ = ["DEFLATE_WINDOW_BITS", "PreparedFrame", "encode_frame", "prepare"]

#: Window of the compressed form, in bits: uvicorn's ``server_max_window_bits`` (4 KiB).
DEFLATE_WINDOW_BITS = 12
#: zlib's memory level for the one-off compressor (its default; nothing of it outlives the call).
DEFLATE_MEM_LEVEL = 8

OP_TEXT = 0x1
OP_BINARY = 0x2
_FIN = 0x80
_RSV1 = 0x40
#: The empty stored block a sync flush ends with, which RFC 7692 §7.2.1 leaves out.
_SYNC_TAIL = b"\x00\x00\xff\xff"
_LEN16 = struct.Struct("!BBH")
_LEN64 = struct.Struct("!BBQ")


def encode_frame(opcode: int, payload: bytes, *, rsv1: bool = False) -> bytes:
    """One unmasked final frame (RFC 6455 §5.2) carrying ``payload`` whole."""
    first = _FIN | (_RSV1 if rsv1 else 0) | opcode
    length = len(payload)
    if length < 126:
        header = bytes((first, length))
    elif length < 1 << 16:
        header = _LEN16.pack(first, 126, length)
    else:
        header = _LEN64.pack(first, 127, length)
    return header + payload


def _deflate(payload: bytes | memoryview) -> bytes:
    compressor = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -DEFLATE_WINDOW_BITS, DEFLATE_MEM_LEVEL)
    body = compressor.compress(payload) + compressor.flush(zlib.Z_SYNC_FLUSH)
    return body[:-4] if body.endswith(_SYNC_TAIL) else body


class PreparedFrame:
    """An ASGI ``websocket.send`` message and its encoded frame; immutable, shared by a whole fan-out."""

    __slots__ = ("_deflated", "_opcode", "data", "message")

    message: Message
    data: bytes
    _opcode: int
    _deflated: bytes | None

    def __init__(self, message: Message, opcode: int, payload: bytes) -> None:
        setattr_ = object.__setattr__
        setattr_(self, "message", message)
        setattr_(self, "data", encode_frame(opcode, payload))
        setattr_(self, "_opcode", opcode)
        setattr_(self, "_deflated", None)

    def deflated(self) -> bytes:
        """The frame compressed with permessage-deflate, no context takeover (computed once)."""
        frame: bytes | None = self._deflated
        if frame is None:
            frame = encode_frame(self._opcode, _deflate(self._payload()), rsv1=True)
            object.__setattr__(self, "_deflated", frame)
        return frame

    def _payload(self) -> memoryview:
        data = self.data
        length = data[1]  # 0-125, or 126 / 127 for a 16 / 64-bit length after it
        return memoryview(data)[2 + (2 if length == 126 else 8 if length == 127 else 0) :]

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"PreparedFrame is immutable (tried to set {name!r})")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"PreparedFrame is immutable (tried to delete {name!r})")

    def __repr__(self) -> str:
        kind = "text" if self._opcode == OP_TEXT else "binary"
        return f"<PreparedFrame {kind} {len(self._payload())} bytes>"


def prepare(message: Message) -> PreparedFrame:
    """The frame for an ASGI ``websocket.send`` message with exactly one of ``text`` (str) or ``bytes``.

    Raises ``ValueError`` for another message type or not exactly one of the two keys,
    ``TypeError`` when the value has the wrong type (as a server would, at send time).
    """
    kind = message.get("type")
    if kind != "websocket.send":
        raise ValueError(f"prepare() takes a 'websocket.send' message, not {kind!r}")
    text, data = message.get("text"), message.get("bytes")
    if (text is None) == (data is None):
        raise ValueError("a 'websocket.send' message needs exactly one of 'text' and 'bytes' that is not None")
    if text is not None:
        if not isinstance(text, str):
            raise TypeError(f"'websocket.send' 'text' must be str, not {type(text).__name__}")
        return PreparedFrame(message, OP_TEXT, text.encode())
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"'websocket.send' 'bytes' must be bytes, bytearray or memoryview, not {type(data).__name__}")
    return PreparedFrame(message, OP_BINARY, bytes(data))

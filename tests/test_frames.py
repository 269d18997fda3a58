"""hubbub.frames: prepared frames decode with websockets' own parser, plain and compressed."""

from __future__ import annotations

import pytest
from websockets.extensions.permessage_deflate import PerMessageDeflate
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from hubbub.frames import DEFLATE_WINDOW_BITS, PreparedFrame, prepare

SIZES = [0, 125, 126, 65535, 65536]


def parse(data: bytes, extensions: list[PerMessageDeflate] | None = None) -> Frame:
    """One frame as a client reads it (unmasked), through websockets' parser; all of ``data`` consumed."""
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    parser = Frame.parse(reader.read_exact, mask=False, max_size=None, extensions=extensions)
    with pytest.raises(StopIteration) as done:
        next(parser)
    assert reader.at_eof(), "bytes left after the frame"
    return done.value.value


def client_inflater() -> PerMessageDeflate:
    """A client's side of permessage-deflate: the server takes no context over (as negotiated)."""
    return PerMessageDeflate(
        remote_no_context_takeover=True,
        local_no_context_takeover=False,
        remote_max_window_bits=DEFLATE_WINDOW_BITS,
        local_max_window_bits=DEFLATE_WINDOW_BITS,
    )


def payload(size: int) -> bytes:
    return bytes(i % 251 for i in range(size))


@pytest.mark.parametrize("size", SIZES)
def test_binary_frames_of_every_length_encoding_parse_back(size: int) -> None:
    """7-bit, 16-bit and 64-bit lengths at their edges: final binary frame, unmasked, same payload."""
    frame = parse(prepare({"type": "websocket.send", "bytes": payload(size)}).data)
    assert (frame.opcode, frame.fin, frame.rsv1) == (Opcode.BINARY, True, False)
    assert frame.data == payload(size)


@pytest.mark.parametrize("size", SIZES)
def test_text_frames_of_every_length_encoding_parse_back(size: int) -> None:
    text = "x" * size
    frame = parse(prepare({"type": "websocket.send", "text": text}).data)
    assert (frame.opcode, frame.fin) == (Opcode.TEXT, True)
    assert frame.data.decode() == text


def test_non_ascii_text_is_utf8_and_its_length_is_in_bytes() -> None:
    text = "héllo ✓ 🎉" * 20  # 2, 3 and 4-byte characters: 300 bytes, 160 characters
    frame = parse(prepare({"type": "websocket.send", "text": text}).data)
    assert frame.data.decode() == text
    assert len(frame.data) == len(text.encode()) > 126 > len(text) // 2


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_bytes_like_payloads_are_accepted(kind: type) -> None:
    frame = prepare({"type": "websocket.send", "bytes": kind(b"abc")})
    assert parse(frame.data).data == b"abc"


def test_the_message_is_kept_for_servers_without_the_extension() -> None:
    message = {"type": "websocket.send", "text": "hi"}
    assert prepare(message).message is message


@pytest.mark.parametrize("size", SIZES)
def test_deflated_frames_inflate_with_a_clients_permessage_deflate(size: int) -> None:
    """RSV1 set, the sync flush's 00 00 ff ff left out, and the client gets the original payload back."""
    data = payload(size)
    deflated = prepare({"type": "websocket.send", "bytes": data}).deflated()
    assert deflated[0] == 0x80 | 0x40 | 0x2  # FIN, RSV1, binary
    assert parse(deflated, [client_inflater()]).data == data


def test_each_deflated_message_inflates_on_its_own_in_any_order() -> None:
    """No context takeover: one client inflater decodes messages compressed independently."""
    inflater = client_inflater()
    texts = ["first message, first message", "second ✓ second ✓", "first message, first message"]
    frames = [prepare({"type": "websocket.send", "text": t}).deflated() for t in texts]
    assert [parse(f, [inflater]).data.decode() for f in frames] == texts


def test_deflated_is_computed_once_and_shorter_for_repetitive_text() -> None:
    frame = prepare({"type": "websocket.send", "text": "abc" * 1000})
    assert frame.deflated() is frame.deflated()
    assert len(frame.deflated()) < len(frame.data) // 10


def test_prepared_frames_are_immutable() -> None:
    frame = prepare({"type": "websocket.send", "text": "hi"})
    with pytest.raises(AttributeError, match="immutable"):
        frame.data = b""  # type: ignore[misc]
    assert isinstance(frame, PreparedFrame)
    assert repr(frame) == "<PreparedFrame text 2 bytes>"


@pytest.mark.parametrize(
    ("message", "error", "words"),
    [
        ({"type": "websocket.send", "text": b"bytes"}, TypeError, "'text' must be str, not bytes"),
        ({"type": "websocket.send", "bytes": "text"}, TypeError, "'bytes' must be bytes, bytearray or memoryview"),
        ({"type": "websocket.send", "bytes": 3}, TypeError, "not int"),
        ({"type": "websocket.send"}, ValueError, "exactly one of 'text' and 'bytes'"),
        ({"type": "websocket.send", "text": "a", "bytes": b"a"}, ValueError, "exactly one"),
        ({"type": "websocket.close"}, ValueError, "not 'websocket.close'"),
    ],
)
def test_bad_messages_are_refused_with_a_clear_error(message: dict, error: type, words: str) -> None:
    with pytest.raises(error, match=words):
        prepare(message)

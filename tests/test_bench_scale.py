"""The scale benchmark's measuring parts: the listening client's frame parsing, and GC pause windows."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bench import gcstats
from bench.load.rawws import ListeningClient, handshake


class _Transport:
    """Records what the client writes; stands in for a socket."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.aborted = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def abort(self) -> None:
        self.aborted = True

    def get_extra_info(self, name: str) -> Any:
        return None


def _frame(opcode: int, payload: bytes) -> bytes:
    size = len(payload)
    if size < 126:
        head = bytes((0x80 | opcode, size))
    elif size < 65536:
        head = bytes((0x80 | opcode, 126)) + size.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 127)) + size.to_bytes(8, "big")
    return head + payload


def _client() -> tuple[ListeningClient, list[bytes], _Transport]:
    payloads: list[bytes] = []
    client = ListeningClient(handshake(8000, "ws/group"), lambda _, payload: payloads.append(payload))
    transport = _Transport()
    client.connection_made(transport)  # type: ignore[arg-type]
    return client, payloads, transport


def test_payloads_of_every_length_form_arrive_whole_however_the_bytes_are_split() -> None:
    async def scenario() -> None:
        client, payloads, transport = _client()
        assert transport.written[0].startswith(b"GET /ws/group HTTP/1.1\r\n")
        sent = [b"0 short", b"1 " + b"m" * 300, b"2 " + b"l" * 70000]
        stream = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n" + b"".join(
            _frame(0x1, p) for p in sent
        )
        for at in range(0, len(stream), 7):  # the worst case: every header split across reads
            client.data_received(stream[at : at + 7])
        assert client.opened.done() and client.opened.exception() is None
        assert payloads == sent

    asyncio.run(scenario())


def test_a_ping_is_answered_with_a_masked_pong_carrying_its_payload() -> None:
    async def scenario() -> None:
        client, payloads, transport = _client()
        client.data_received(b"HTTP/1.1 101 Switching Protocols\r\n\r\n" + _frame(0x9, b"abc") + _frame(0x1, b"7 x"))
        assert transport.written[-1] == b"\x8a\x83\x00\x00\x00\x00abc"
        assert payloads == [b"7 x"]

    asyncio.run(scenario())


def test_a_refused_handshake_fails_the_opening_and_drops_the_connection() -> None:
    async def scenario() -> None:
        client, _, transport = _client()
        client.data_received(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n")
        assert isinstance(client.opened.exception(), ConnectionError)
        assert transport.aborted

    asyncio.run(scenario())


def test_gc_window_counts_collections_and_pauses_between_two_scrapes() -> None:
    text = (
        'hubbub_gc_collections_total{generation="0"} 10\nhubbub_gc_collections_total{generation="2"} 1\n'
        'hubbub_gc_pause_seconds_total{generation="0"} 0.01\nhubbub_gc_pause_seconds_total{generation="2"} 0.5\n'
        "hubbub_gc_collections_created 123.0\nhubbub_gc_pause_max_seconds 0.5\n"
    )
    before = gcstats.parse(text)
    assert before == gcstats.GcReading(11, 0.51, 0.5)
    assert gcstats.parse("hubbub_connections_open 3\n") is None
    risen = gcstats.GcReading(13, 1.31, 0.7)
    assert gcstats.window([before], [risen]) == {
        "collections": 2,
        "total_ms": pytest.approx(800.0),
        "max_ms": pytest.approx(700.0),
        "max_is_bound": False,
    }
    same_max = gcstats.GcReading(14, 0.61, 0.5)
    assert gcstats.window([before], [same_max])["max_is_bound"] is True  # type: ignore[index]
    assert gcstats.window([before], [None]) is None


def test_gc_longest_pause_is_the_largest_generations_not_their_sum() -> None:
    text = (
        'hubbub_gc_collections_total{generation="0"} 19\nhubbub_gc_collections_total{generation="2"} 1\n'
        'hubbub_gc_pause_max_seconds{generation="0"} 0.002\nhubbub_gc_pause_max_seconds{generation="1"} 0.0\n'
        'hubbub_gc_pause_max_seconds{generation="2"} 0.03\n'
    )
    assert gcstats.parse(text) == gcstats.GcReading(20, 0.0, 0.03)


def test_gc_since_start_sums_every_process_and_keeps_the_longest_pause() -> None:
    readings = [gcstats.GcReading(20, 1.5, 1.2), gcstats.GcReading(4, 0.25, 0.2)]
    assert gcstats.since_start(readings) == {
        "collections": 24,
        "total_ms": pytest.approx(1750.0),
        "max_ms": pytest.approx(1200.0),
        "max_is_bound": False,
    }
    assert gcstats.since_start([readings[0], None]) is None

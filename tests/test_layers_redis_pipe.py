"""The Redis layers' command pipe against a real Redis: what it encodes, what it refuses, what it survives.

Commands are encoded by ``hubbub.layers.redis.wire`` and written with redis-py's
``Connection.send_packed_command``; these tests pin what each argument type the
layers may pass becomes in Redis, and what is refused.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from hubbub.layers.redis.connection import HostSpec, ShardLink
from hubbub.layers.redis.wire import encode_command

BOUND = 10.0


@pytest.fixture
async def link(redis_url: str):
    link = ShardLink(0, HostSpec(redis_url), lambda link: None)
    yield link
    await link.close()


@pytest.mark.parametrize(
    "value, stored",
    [
        (b"\x00raw\r\nbytes", b"\x00raw\r\nbytes"),
        ("text é", "text é".encode()),
        (42, b"42"),
        (-7, b"-7"),
        (1.5, b"1.5"),
        (1e-7, b"1e-07"),
        (memoryview(b"view"), b"view"),
        (bytearray(b"array"), b"array"),
    ],
    ids=["bytes", "str", "int", "negative int", "float", "small float", "memoryview", "bytearray"],
)
async def test_each_argument_type_reaches_redis_as_its_bytes(
    link: ShardLink, redis_prefix: str, value: Any, stored: bytes
) -> None:
    """bytes go as they are, str as UTF-8, numbers as their decimal text, a memoryview as its bytes."""
    key = f"{redis_prefix}:value"
    pipe = link.pipe
    try:
        assert await asyncio.wait_for(pipe.execute("SET", key, value), BOUND) == b"OK"
        assert await asyncio.wait_for(pipe.execute("GET", key), BOUND) == stored
    finally:
        await pipe.execute("DEL", key)


@pytest.mark.parametrize(
    "value", [True, False, None, object(), ["list"]], ids=["True", "False", "None", "object", "list"]
)
async def test_a_bool_or_any_other_type_is_refused_and_the_pipe_keeps_working(
    link: ShardLink, redis_prefix: str, value: Any
) -> None:
    """A bool (``True`` would be ambiguous: 1 or "True"?) and non-scalar values are refused before anything is sent."""
    name = "bool" if isinstance(value, bool) else type(value).__name__
    key = f"{redis_prefix}:refused"
    pipe = link.pipe
    await asyncio.wait_for(pipe.execute("PING"), BOUND)  # connected: the refusal is the encoder's
    with pytest.raises(TypeError, match=name):
        await pipe.execute("SET", key, value)
    assert await asyncio.wait_for(pipe.execute("EXISTS", key), BOUND) == 0  # nothing half-written
    assert await asyncio.wait_for(pipe.execute("SET", key, "after"), BOUND) == b"OK"
    assert await pipe.execute("GET", key) == b"after"
    await pipe.execute("DEL", key)


async def test_commands_issued_together_are_answered_in_order(link: ShardLink, redis_prefix: str) -> None:
    """Many commands in one turn of the loop share writes; each caller gets its own reply."""
    key = f"{redis_prefix}:counter"
    pipe = link.pipe
    try:
        replies = await asyncio.wait_for(asyncio.gather(*(pipe.execute("INCR", key) for _ in range(500))), BOUND)
        assert replies == list(range(1, 501))
    finally:
        await pipe.execute("DEL", key)


async def test_a_large_burst_beyond_the_write_buffer_limit_arrives_whole(link: ShardLink, redis_prefix: str) -> None:
    """More than WRITE_BUFFER_LIMIT bytes at once: callers wait for the writer, nothing is lost or reordered."""
    key = f"{redis_prefix}:list"
    pipe = link.pipe
    chunk = b"x" * 64 * 1024
    try:
        pushed = await asyncio.wait_for(asyncio.gather(*(pipe.execute("RPUSH", key, chunk) for _ in range(40))), BOUND)
        assert pushed == list(range(1, 41))
        assert await pipe.execute("LLEN", key) == 40
    finally:
        await pipe.execute("DEL", key)


@pytest.mark.parametrize(
    "value, encoded",
    [
        (b"\x00v", b"$2\r\n\x00v\r\n"),
        ("é", b"$2\r\n\xc3\xa9\r\n"),
        (5, b"$1\r\n5\r\n"),
        (1.5, b"$3\r\n1.5\r\n"),
        (memoryview(b"mv"), b"$2\r\nmv\r\n"),
    ],
    ids=["bytes", "str", "int", "float", "memoryview"],
)
def test_encode_command_writes_an_array_of_bulk_strings(value: Any, encoded: bytes) -> None:
    assert encode_command(["SET", value]) == b"*2\r\n$3\r\nSET\r\n" + encoded


@pytest.mark.parametrize(
    "value", [True, False, None, {"a": 1}, object()], ids=["True", "False", "None", "dict", "object"]
)
def test_encode_command_refuses_other_types_with_a_type_error_naming_them(value: Any) -> None:
    name = "bool" if isinstance(value, bool) else type(value).__name__
    with pytest.raises(TypeError, match=name):
        encode_command(["SET", "k", value])

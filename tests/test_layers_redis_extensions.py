"""Presence and history on the Redis layers: what only shows with several processes, or a real server.

Layer instances stand for processes. The shared Redis is used under a private prefix;
tests that restart Redis use a private redis-server.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis.asyncio

from hubbub.layers import channel_layers
from hubbub.layers.redis import RedisChannelLayer, RedisPubSubChannelLayer
from hubbub.layers.redis.protocol import GROUP, frame_head, message_frame, parse_frame, parse_seq
from tests.servers import redis_server
from tests.test_layers_redis import layer_factory, raw_client
from tests.waiting import ManualClock

pytestmark = pytest.mark.timeout(30)

FEEDS = {"feed*": {"history": 10}}
WAIT = 3.0


@pytest.fixture(params=[RedisChannelLayer, RedisPubSubChannelLayer], ids=["redis", "redis-pubsub"])
async def make(request: Any, redis_target: Any, redis_prefix: str) -> AsyncIterator[Callable[..., Any]]:
    """Builds "processes" of one Redis layer class on the shared Redis or the test cluster, with ``feed*``
    keeping history."""
    async with layer_factory(request.param, redis_target, redis_prefix) as factory:

        def build(**config: Any) -> Any:
            config.setdefault("groups", FEEDS)
            return factory(**config)

        yield build


async def receive(layer: Any, channel: str, timeout: float = WAIT) -> dict:
    return await asyncio.wait_for(layer.receive(channel), timeout)


async def member_of(layer: Any, group: str) -> str:
    channel = await layer.new_channel()
    await layer.group_add(group, channel)
    return channel


async def stream_length(layer: Any, group: str) -> int:
    client = raw_client(layer)
    try:
        return await client.xlen(layer.keys.history(group))
    finally:
        await client.aclose()


# -- history across processes -------------------------------------------------------------


async def test_every_process_delivers_a_message_with_the_same_epoch_and_offset(make):
    one, two = make(), make()
    heard_by_one, heard_by_two = await member_of(one, "feed_a"), await member_of(two, "feed_a")
    await one.group_send("feed_a", {"type": "note", "n": 1})
    await two.group_send("feed_a", {"type": "note", "n": 2})
    seen = [
        [await receive(layer, channel) for _ in range(2)]
        for layer, channel in ((one, heard_by_one), (two, heard_by_two))
    ]
    assert seen[0] == seen[1]
    assert [(m["n"], m["_offset"]) for m in seen[0]] == [(1, 1), (2, 2)]
    answer = await two.group_history("feed_a", epoch=seen[0][0]["_epoch"], since=0)
    assert answer["recovered"] is True and answer["messages"] == seen[0]


async def test_a_worker_channel_member_gets_the_numbered_message_too(redis_target, redis_prefix):
    async with layer_factory(RedisChannelLayer, redis_target, redis_prefix) as factory:
        sender, worker = factory(groups=FEEDS), factory(groups=FEEDS)
        await sender.group_add("feed_jobs", "jobs")
        await sender.group_send("feed_jobs", {"type": "job"})
        job = await receive(worker, "jobs")
        assert job["_offset"] == 1 and job["_epoch"] == (await sender.group_history("feed_jobs"))["epoch"]


async def test_groups_without_history_write_no_history_keys(make):
    layer = make()
    channel = await member_of(layer, "plain")
    await layer.group_send("plain", {"type": "x"})
    assert await receive(layer, channel) == {"type": "x"}
    client = raw_client(layer)
    try:
        assert not await client.exists(layer.keys.history("plain"), layer.keys.position("plain"))
    finally:
        await client.aclose()


async def test_the_stream_is_trimmed_to_exactly_history_entries(make):
    layer = make()
    for n in range(25):
        await layer.group_send("feed_long", {"type": "note", "n": n})
    assert await stream_length(layer, "feed_long") == 10
    answer = await layer.group_history("feed_long", epoch=(await layer.group_history("feed_long"))["epoch"], since=15)
    assert [m["n"] for m in answer["messages"]] == list(range(15, 25))


async def test_the_stream_is_trimmed_by_ttl(make):
    layer = make(groups={"ticker": {"ttl": 0.1}})
    for n in range(3):
        await layer.group_send("ticker", {"type": "tick", "n": n})
    assert await stream_length(layer, "ticker") == 3
    await asyncio.sleep(0.15)
    await layer.group_send("ticker", {"type": "tick", "n": 3})
    assert await stream_length(layer, "ticker") == 1


async def test_a_thousand_missed_messages_come_back_in_order_quickly(make):
    layer = make(groups={"feed*": {"history": 1000}})
    start = await layer.group_history("feed_bulk")
    await asyncio.gather(*(layer.group_send("feed_bulk", {"type": "note", "n": n}) for n in range(1000)))
    started = time.perf_counter()
    answer = await layer.group_history("feed_bulk", epoch=start["epoch"], since=0)
    took = time.perf_counter() - started
    assert answer["recovered"] is True
    assert [m["_offset"] for m in answer["messages"]] == list(range(1, 1001))
    assert took < 1.0, f"recovering 1,000 messages took {took * 1e3:.0f} ms"


# -- presence across processes ------------------------------------------------------------


async def test_members_added_by_different_processes_are_listed_by_each(make):
    one, two = make(), make()
    ann = await one.presence_add("lobby", "specific.ann", user_id=1, info={"name": "Ann"})
    bob = await two.presence_add("lobby", "specific.bob", user_id=2, info={"name": "Bob"})
    assert await one.presence("lobby") == await two.presence("lobby") == [ann, bob]
    assert await one.presence_remove("lobby", "specific.ann") is True
    assert await two.presence("lobby") == [bob]


async def test_a_join_in_one_process_reaches_a_member_in_another_quickly(make):
    one, two = make(), make()
    watcher = await member_of(two, "lobby")
    started = time.perf_counter()
    member = await one.presence_add("lobby", "specific.ann", info="hi")
    event = await receive(two, watcher)
    took = time.perf_counter() - started
    assert event == {"type": "presence.join", "group": "lobby", "member": member}
    assert took < 0.5, f"a presence join took {took * 1e3:.1f} ms to reach the other process"


async def test_a_crashed_processs_members_age_out_with_a_leave_event(make):
    doomed, survivor = make(presence_timeout=0.6), make(presence_timeout=0.6)
    watcher = await member_of(survivor, "lobby")
    await survivor.presence_add("lobby", "specific.stays")
    lost = await doomed.presence_add("lobby", "specific.doomed", info="gone soon")
    assert [m["channel"] for m in await survivor.presence("lobby")] == ["specific.stays", "specific.doomed"]
    await doomed.close_pools()  # its heartbeat stops; it never says it leaves
    crashed_at = time.monotonic()
    events = [await receive(survivor, watcher) for _ in range(3)]  # two joins, then the leave
    assert events[2] == {"type": "presence.leave", "group": "lobby", "member": lost}
    assert time.monotonic() - crashed_at < 0.6 + 0.2 + 1.0  # timeout, a heartbeat period, slack for a busy machine
    assert [m["channel"] for m in await survivor.presence("lobby")] == ["specific.stays"]
    await asyncio.sleep(0.3)  # more heartbeats: the leave was sent once
    with pytest.raises(asyncio.TimeoutError):
        await receive(survivor, watcher, 0.2)


async def test_a_listing_ages_out_members_even_when_no_process_heartbeats(make):
    clock = ManualClock()
    doomed, reader = make(presence_timeout=0.3, clock=clock), make(presence_timeout=0.3, clock=clock)
    await doomed.presence_add("lobby", "specific.doomed")
    await doomed.close_pools()
    watcher = await member_of(reader, "lobby")
    clock.advance(0.35)
    assert await reader.presence("lobby") == []
    assert (await receive(reader, watcher))["type"] == "presence.leave"


async def test_a_live_process_keeps_its_members_past_the_timeout(make):
    layer = make(presence_timeout=0.3)
    await layer.presence_add("lobby", "specific.alive")
    await asyncio.sleep(0.7)
    assert [m["channel"] for m in await layer.presence("lobby")] == ["specific.alive"]


async def test_a_slow_process_puts_its_aged_out_member_back_and_announces_it(make):
    slow, other = make(presence_timeout=1.5), make(presence_timeout=0.3)  # slow's first beat: 0.5 s after adding
    watcher = await member_of(other, "lobby")
    member = await slow.presence_add("lobby", "specific.slow")
    assert (await receive(other, watcher))["type"] == "presence.join"
    client = raw_client(other)
    try:  # as if its heartbeats had stopped for a while
        await client.zadd(other.keys.presence("lobby")[1], {"specific.slow": 0})
    finally:
        await client.aclose()
    assert await other.presence("lobby") == []
    assert await receive(other, watcher) == {"type": "presence.leave", "group": "lobby", "member": member}
    assert await receive(other, watcher) == {"type": "presence.join", "group": "lobby", "member": member}
    assert await other.presence("lobby") == [member]


def test_a_numbered_frame_carries_epoch_and_offset_in_its_seq_field():
    frame = parse_frame(message_frame(GROUP, "feed_a", 99, b"\0payload", seq=b"3f9c1a0b7d2e:42"))
    assert (frame.target, frame.payload, parse_seq(frame.seq)) == ("feed_a", b"\0payload", ("3f9c1a0b7d2e", 42))
    assert parse_frame(frame_head(GROUP, "feed_a", 99) + b"e:1\0p").seq == b"e:1"


# -- a private Redis that restarts empty --------------------------------------------------

needs_redis_server = pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")


async def eventually(attempt: Callable[[], Any], timeout: float = 5.0) -> Any:
    """``await attempt()`` until it neither raises a connection error nor returns None."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = await attempt()
            if result is not None:
                return result
        except (ConnectionError, OSError, redis.exceptions.ConnectionError):
            pass
        if time.monotonic() > deadline:
            raise AssertionError("Redis did not come back")
        await asyncio.sleep(0.05)


@needs_redis_server
@pytest.mark.parametrize("layer_class", [RedisChannelLayer, RedisPubSubChannelLayer])
async def test_history_lost_with_redis_starts_a_new_epoch(layer_class):
    with redis_server() as server:
        layer = layer_class(hosts=[server.url], groups=FEEDS, presence_timeout=0.3)
        try:
            for n in range(3):
                await layer.group_send("feed_a", {"type": "note", "n": n})
            before = await layer.group_history("feed_a")
            await layer.presence_add("lobby", "specific.ann", info="back")
            server.kill()
            server.start()
            after = await eventually(lambda: layer.group_history("feed_a", epoch=before["epoch"], since=3))
            assert after["recovered"] is False and after["epoch"] != before["epoch"] and after["offset"] == 0
            await layer.group_send("feed_a", {"type": "note", "n": 3})
            fresh = await layer.group_history("feed_a", epoch=after["epoch"], since=0)
            assert [(m["n"], m["_offset"]) for m in fresh["messages"]] == [(3, 1)]

            async def listed() -> Any:  # the heartbeat puts the member back
                return await layer.presence("lobby") or None

            assert [m["info"] for m in await eventually(listed)] == ["back"]
        finally:
            await layer.close_pools()


# -- configuration and bad input ------------------------------------------------------------


async def test_the_channel_layers_setting_takes_groups_and_presence_timeout(settings, redis_url, redis_prefix):
    settings.CHANNEL_LAYERS = {
        "kept": {
            "BACKEND": "hubbub.layers.redis.RedisChannelLayer",
            "CONFIG": {
                "hosts": [redis_url],
                "prefix": redis_prefix,
                "groups": {"chat_*": {"history": 100, "ttl": 300}},
                "presence_timeout": 10,
            },
        }
    }
    layer = channel_layers["kept"]
    assert {"presence", "history"} <= set(layer.extensions)
    assert layer.presence_timeout == 10 and layer.history_policy("chat_x").history == 100


@pytest.mark.parametrize(
    "config, error",
    [
        ({"groups": {"chat_*": {"history": 5, "size": 3}}}, "unknown key"),
        ({"groups": {"chat_*": {"history": 0}}}, "positive number of messages"),
        ({"presence_timeout": 0}, "presence_timeout"),
        ({"presence_timeout": "30"}, "presence_timeout"),
    ],
)
@pytest.mark.parametrize("layer_class", [RedisChannelLayer, RedisPubSubChannelLayer])
def test_bad_settings_raise_value_error(layer_class, config, error):
    with pytest.raises(ValueError, match=error):
        layer_class(**config)


@pytest.mark.parametrize(
    "args, kwargs, error",
    [
        (("feed*",), {}, ValueError),
        (("feed*",), {"history": -1}, ValueError),
        (("feed*",), {"ttl": "soon"}, ValueError),
        (("",), {"history": 1}, TypeError),
        ((5,), {"history": 1}, TypeError),
    ],
)
def test_bad_configure_group_arguments_raise(args, kwargs, error):
    with pytest.raises(error):
        RedisPubSubChannelLayer().configure_group(*args, **kwargs)


async def test_bad_questions_raise_type_error_before_touching_redis():
    layer = RedisChannelLayer(hosts=["redis://127.0.0.1:1/0"], groups=FEEDS)  # nothing listens there
    calls: list[Any] = [
        layer.group_history("feed a"),
        layer.group_history("feed_a", epoch=b"bytes"),
        layer.group_history("feed_a", since=None),
        layer.group_history("feed_a", since=2.0),
        layer.presence("x" * 100),
        layer.presence_add("lobby", "no spaces"),
        layer.presence_add("lobby", "specific.ann", info=object()),
        layer.presence_remove("lob by", "specific.ann"),
    ]
    for call in calls:
        with pytest.raises(TypeError):
            await call
    await layer.close_pools()

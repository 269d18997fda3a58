"""The Redis layers when Redis misbehaves or is more than one server: private redis-servers only."""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio
from redis.exceptions import ConnectionError as RedisConnectionError

from hubbub.exceptions import ChannelLayerUnavailable
from hubbub.layers.redis import RedisChannelLayer, RedisPubSubChannelLayer
from hubbub.layers.redis.protocol import shard_index
from tests.servers import Process, free_port, redis_server

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed"),
]

WAIT = 5.0


@pytest.fixture
def server() -> Iterator[Process]:
    with redis_server() as process:
        yield process


@pytest.fixture
def two_servers() -> Iterator[list[Process]]:
    with redis_server() as first, redis_server() as second:
        yield [first, second]


async def receive(layer: Any, channel: str, timeout: float = WAIT) -> dict:
    return await asyncio.wait_for(layer.receive(channel), timeout)


async def client_count(url: str) -> int:
    client = redis.asyncio.Redis.from_url(url)
    try:
        return len((await client.execute_command("CLIENT", "LIST")).splitlines()) - 1  # not this one
    finally:
        await client.aclose()


async def until_delivered(sender: Any, owner: Any, group: str, channel: str) -> dict:
    """group_send every 100 ms until ``channel`` receives one (Redis coming back)."""
    for _ in range(100):
        try:
            await sender.group_send(group, {"type": "probe"})
        except ChannelLayerUnavailable:
            await asyncio.sleep(0.1)
            continue
        try:
            return await receive(owner, channel, 0.1)
        except asyncio.TimeoutError:
            continue
    raise AssertionError(f"{channel} never received a group message again")


@pytest.mark.parametrize("layer_class", [RedisChannelLayer, RedisPubSubChannelLayer])
async def test_restarted_redis_is_reconnected_groups_kept_and_outage_logged_once(server, layer_class, caplog):
    caplog.set_level(logging.INFO, logger="hubbub.layers.redis")
    owner, sender = layer_class(hosts=[server.url]), layer_class(hosts=[server.url])
    try:
        channel = await owner.new_channel()
        await owner.group_add("room", channel)
        for _ in range(50):
            await owner.group_add("room", await owner.new_channel())
        await sender.group_send("room", {"type": "before"})
        assert (await receive(owner, channel))["type"] == "before"

        server.kill()
        for _ in range(20):  # sends while Redis is down are counted, and the caller told
            with pytest.raises(ChannelLayerUnavailable):
                await sender.group_send("room", {"type": "during"})
        with pytest.raises(RedisConnectionError):  # redis-py's error too, as channels_redis raises
            await sender.send(channel, {"type": "direct"})
        assert sender.lost >= 21
        await asyncio.sleep(0.3)

        server.start()
        assert (await until_delivered(sender, owner, "room", channel))["type"] == "probe"
        await sender.group_send("room", {"type": "after"})
        while (message := await receive(owner, channel))["type"] == "probe":
            pass
        assert message["type"] == "after"
        assert await sender.group_count("room") == 51  # the owner put its channels back in the group
    finally:
        await owner.close_pools()
        await sender.close_pools()
    lost_logs = [r for r in caplog.records if r.getMessage().startswith("Lost connection")]
    assert 1 <= len(lost_logs) <= 4  # once per connection set (sender, owner), not once per message
    back_logs = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Reconnected")]
    assert any("could not be sent" in text and " 0 message" not in text for text in back_logs)


async def test_thousand_concurrent_group_discards_use_a_bounded_number_of_connections(server):
    layer = RedisChannelLayer(hosts=[server.url])
    try:
        channels = [await layer.new_channel() for _ in range(1000)]
        await asyncio.gather(*(layer.group_add("exit", channel) for channel in channels))
        discards = asyncio.gather(*(layer.group_discard("exit", channel) for channel in channels))
        peak = await client_count(server.url)
        await discards
        assert peak <= 3  # the command pipe and the inbox reader
        assert await layer.group_count("exit") == 0
    finally:
        await layer.close_pools()


async def test_two_servers_share_names_by_consistent_hash(two_servers):
    urls = [s.url for s in two_servers]
    sender, receiver = RedisChannelLayer(hosts=urls), RedisChannelLayer(hosts=urls)
    try:
        names = [f"queue{i}" for i in range(20)]
        for name in names:
            await sender.send(name, {"type": "job", "name": name})
        for name in names:
            assert (await receive(receiver, name))["name"] == name
        channels = [await receiver.new_channel() for _ in range(10)]
        groups = [f"group{i}" for i in range(10)]
        for group, channel in zip(groups, channels, strict=False):
            await receiver.group_add(group, channel)
        for group in groups:
            await sender.group_send(group, {"type": "hi", "group": group})
        for group, channel in zip(groups, channels, strict=False):
            assert (await receive(receiver, channel))["group"] == group
        for index, url in enumerate(urls):  # each group's keys live on its own shard, and only there
            client = redis.asyncio.Redis.from_url(url)
            try:
                here = {g for g in groups if await client.exists(sender.keys.members(g))}
            finally:
                await client.aclose()
            assert here == {g for g in groups if shard_index(g, 2) == index}
            assert here
    finally:
        await sender.close_pools()
        await receiver.close_pools()


def start_sentinel(master_port: int) -> Process:
    workdir = Path(tempfile.mkdtemp(prefix="hubbub-sentinel-"))
    port = free_port()
    config = workdir / "sentinel.conf"
    config.write_text(
        f"port {port}\nbind 127.0.0.1\ndir {workdir}\nsentinel monitor hubbubmaster 127.0.0.1 {master_port} 1\n"
    )
    process = Process([shutil.which("redis-server") or "redis-server", str(config), "--sentinel"], workdir, port=port)
    return process


async def test_sentinel_host_entry_finds_the_master(server):
    try:
        sentinel = start_sentinel(int(server.url.rsplit(":", 1)[1].split("/")[0])).start()
    except RuntimeError as exc:
        pytest.skip(f"redis-server --sentinel could not be started here: {exc}")
    try:
        host = {"sentinels": [("127.0.0.1", sentinel.port)], "master_name": "hubbubmaster"}
        layer = RedisChannelLayer(hosts=[host])
        try:
            channel = await layer.new_channel()
            await layer.group_add("via-sentinel", channel)
            await layer.group_send("via-sentinel", {"type": "hello"})
            assert await receive(layer, channel) == {"type": "hello"}
            await layer.send("sentinel-queue", {"type": "job"})
            assert await receive(layer, "sentinel-queue") == {"type": "job"}
        finally:
            await layer.close_pools()
    finally:
        sentinel.stop()


async def test_redis_without_blmpop_still_delivers_every_message():
    """Redis 6.2 has no BLMPOP: the inbox reader falls back to BLPOP and LPOP."""
    with redis_server(extra=["--rename-command", "BLMPOP", ""]) as old_redis:
        sender, owner = RedisChannelLayer(hosts=[old_redis.url]), RedisChannelLayer(hosts=[old_redis.url])
        try:
            channel = await owner.new_channel()
            await owner.group_add("room", channel)
            for i in range(50):
                await sender.group_send("room", {"type": "n", "i": i})
            assert [(await receive(owner, channel))["i"] for _ in range(50)] == list(range(50))
        finally:
            await sender.close_pools()
            await owner.close_pools()

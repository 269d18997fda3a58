"""RedisChannelLayer against the shared Redis (a unique key prefix per test, never flushed)."""

from __future__ import annotations

import asyncio
import decimal
import gc
import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import redis.asyncio
from asgiref.sync import async_to_sync

from hubbub.exceptions import ChannelFull
from hubbub.layers import channel_layers
from hubbub.layers.redis import RedisChannelLayer, RedisPubSubChannelLayer
from hubbub.layers.redis.serializers import SerializerDoesNotExist
from tests.conftest import redis_config
from tests.waiting import ManualClock, eventually

pytestmark = pytest.mark.timeout(60)

WAIT = 3.0


@asynccontextmanager
async def layer_factory(layer_class: Any, redis_url: Any, redis_prefix: str) -> AsyncIterator[Callable[..., Any]]:
    """Builds layers on the shared Redis (or the test cluster: a list of seed URLs) under the test's
    prefix; each is a separate "process".

    At the end it deletes the prefix's keys (and nothing else) and closes the layers.
    """
    layers: list[Any] = []

    def make(**config: Any) -> Any:
        if "hosts" not in config and "cluster" not in config:
            config.update(redis_config(redis_url))
        config.setdefault("prefix", redis_prefix)
        layer = layer_class(**config)
        layers.append(layer)
        return layer

    try:
        yield make
    finally:
        if layers:
            await layers[0].flush()
        for layer in layers:
            await layer.close_pools()


@pytest.fixture
async def make_layer(redis_target: Any, redis_prefix: str) -> AsyncIterator[Callable[..., RedisChannelLayer]]:
    async with layer_factory(RedisChannelLayer, redis_target, redis_prefix) as make:
        yield make


@pytest.fixture(params=[RedisChannelLayer, RedisPubSubChannelLayer], ids=["list", "pubsub"])
async def make_any_layer(request: Any, redis_target: Any, redis_prefix: str) -> AsyncIterator[Callable[..., Any]]:
    """``make_layer`` for the checks both Redis layers must pass: once with each layer class."""
    async with layer_factory(request.param, redis_target, redis_prefix) as make:
        yield make


def raw_client(layer: Any) -> Any:
    """A plain redis-py client on the layer's Redis (a cluster client when the layer is on a cluster)."""
    if layer.cluster is not None:
        host, port = layer.cluster.addresses[0]
        return redis.asyncio.RedisCluster(host=host, port=port)
    return redis.asyncio.Redis.from_url(layer.hosts[0].config)


async def redis_command(layer: Any, *command: Any) -> Any:
    """One command on the layer's Redis, through a client of its own (not the layer's connections)."""
    client = raw_client(layer)
    try:
        return await client.execute_command(*command)
    finally:
        await client.aclose()


async def receive(layer: Any, channel: str) -> dict:
    return await asyncio.wait_for(layer.receive(channel), WAIT)


async def nothing_arrives(layer: Any, channel: str, within: float = 0.3) -> bool:
    """True if no message comes on ``channel`` for ``within`` seconds."""
    try:
        await asyncio.wait_for(layer.receive(channel), within)
    except asyncio.TimeoutError:
        return True
    return False


# -- channels ------------------------------------------------------------------------------


async def test_process_channel_send_then_receive_round_trips_the_message(make_layer):
    layer = make_layer()
    channel = await layer.new_channel()
    message = {"type": "test.message", "text": "hi", "n": 3, "raw": b"\x00\xff", "nested": {"a": [1, 2.5, None]}}
    await layer.send(channel, message)
    assert await receive(layer, channel) == message


async def test_new_channel_names_are_unique_valid_and_process_local(make_layer):
    layer = make_layer()
    names = {await layer.new_channel() for _ in range(50)}
    assert len(names) == 50
    for name in names:
        assert name.startswith("specific.") and "!" in name
        assert layer.require_valid_channel_name(name)
    assert len({layer.non_local_name(name) for name in names}) == 1


async def test_message_sent_to_another_process_channel_arrives_there(make_any_layer):
    sender, owner = make_any_layer(), make_any_layer()
    channel = await owner.new_channel()
    await sender.send(channel, {"type": "hello", "data": b"\x01"})
    assert await receive(owner, channel) == {"type": "hello", "data": b"\x01"}


async def test_worker_channel_queues_messages_in_order_until_received(make_layer):
    sender, worker = make_layer(), make_layer()
    for i in range(5):
        await sender.send("thumbnails", {"type": "job", "i": i})
    assert [(await receive(worker, "thumbnails"))["i"] for _ in range(5)] == [0, 1, 2, 3, 4]
    assert await nothing_arrives(worker, "thumbnails")


async def test_json_serializer_round_trips_messages(make_layer):
    layer = make_layer(serializer_format="json")
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "j", "items": [1, "two", {"three": 3.0}], "ok": True})
    assert await receive(layer, channel) == {"type": "j", "items": [1, "two", {"three": 3.0}], "ok": True}


async def test_unknown_serializer_format_is_refused_at_construction():
    with pytest.raises(SerializerDoesNotExist, match="pickle.*registered: json, msgpack"):
        RedisChannelLayer(serializer_format="pickle")


@pytest.mark.parametrize("hosts", ["redis://localhost:6379", [], [42], [{"sentinels": [("localhost", 26379)]}]])
def test_malformed_hosts_are_refused_with_a_clear_error(hosts):
    with pytest.raises(ValueError, match="host"):
        RedisChannelLayer(hosts=hosts)


def test_every_channels_redis_host_form_is_accepted():
    layer = RedisChannelLayer(
        hosts=[
            ("localhost", 6379),
            "redis://:secret@localhost:6379/1",
            "rediss://localhost:6380",
            {"host": "localhost", "port": 6379, "db": 2},
            {"address": "redis://localhost:6379"},
            {"sentinels": [("localhost", 26379)], "master_name": "mymaster", "sentinel_kwargs": {}},
        ]
    )
    assert [spec.kind for spec in layer.hosts] == ["kwargs", "url", "url", "kwargs", "url", "sentinel"]
    assert "secret" not in layer.hosts[1].label


@pytest.mark.parametrize(
    "backend, layer_class",
    [
        ("channels_redis.core.RedisChannelLayer", RedisChannelLayer),
        ("channels_redis.pubsub.RedisPubSubChannelLayer", RedisPubSubChannelLayer),
    ],
)
def test_channels_redis_backend_paths_build_these_layers(settings, redis_url, backend, layer_class):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": backend, "CONFIG": {"hosts": [redis_url], "capacity": 7}}}
    layer = channel_layers.make_backend("default")
    assert isinstance(layer, layer_class) and layer.capacity == 7


# -- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["", "has space", "bad name", "ü", "x" * 100, None, b"bytes"])
async def test_invalid_channel_names_raise_type_error(make_any_layer, name):
    layer = make_any_layer()
    with pytest.raises(TypeError):
        await layer.send(name, {"type": "x"})
    with pytest.raises(TypeError):
        await layer.group_add("group", name)


@pytest.mark.parametrize("name", ["", "a!b", "bad group!", "sp ace", "y" * 100])
async def test_invalid_group_names_raise_type_error(make_any_layer, name):
    layer = make_any_layer()
    with pytest.raises(TypeError):
        await layer.group_send(name, {"type": "x"})
    with pytest.raises(TypeError):
        await layer.group_add(name, "channel")


@pytest.mark.parametrize("message", [["type", "x"], {"no": "type"}, {"type": 5}])
async def test_malformed_messages_raise_type_error(make_any_layer, message):
    layer = make_any_layer()
    with pytest.raises(TypeError):
        await layer.send("worker", message)
    with pytest.raises(TypeError):
        await layer.group_send("group", message)


@pytest.mark.parametrize("bad, type_name", [(decimal.Decimal("1.5"), "Decimal"), ({1, 2}, "set"), (object(), "object")])
async def test_group_send_of_unserialisable_value_fails_at_sender_naming_its_type(make_any_layer, bad, type_name):
    layer = make_any_layer()
    channel = await layer.new_channel()
    await layer.group_add("room", channel)
    with pytest.raises(TypeError, match=type_name):
        await layer.group_send("room", {"type": "x", "payload": {"deep": [bad]}})
    with pytest.raises(TypeError, match=type_name):
        await layer.send(channel, {"type": "x", "value": bad})
    await layer.group_send("room", {"type": "fine"})
    assert await receive(layer, channel) == {"type": "fine"}  # nothing half-sent before it


# -- capacity and expiry ---------------------------------------------------------------------


async def test_full_worker_channel_raises_channel_full_and_accepts_again_after_a_receive(make_layer):
    layer = make_layer(capacity=3)
    for i in range(3):
        await layer.send("jobs", {"type": "job", "i": i})
    with pytest.raises(ChannelFull):
        await layer.send("jobs", {"type": "job", "i": 3})
    assert (await receive(layer, "jobs"))["i"] == 0
    await layer.send("jobs", {"type": "job", "i": 4})
    assert [(await receive(layer, "jobs"))["i"] for _ in range(3)] == [1, 2, 4]


async def test_capacity_is_per_process_channel_not_per_process(make_layer):
    owner, sender = make_layer(capacity=2), make_layer(capacity=2)
    full, other = await owner.new_channel(), await owner.new_channel()
    await sender.send(full, {"type": "a"})
    await sender.send(full, {"type": "b"})
    with pytest.raises(ChannelFull):
        await sender.send(full, {"type": "c"})
    await sender.send(other, {"type": "d"})  # a sibling channel of the same process is unaffected
    assert (await receive(owner, other))["type"] == "d"
    assert (await receive(owner, full))["type"] == "a"

    async def sent() -> bool:  # the receipt reaches Redis with the owner's next command batch
        try:
            await sender.send(full, {"type": "e"})
        except ChannelFull:
            return False
        return True

    await eventually(sent, what="a send fits once the owner has taken a message")
    assert [(await receive(owner, full))["type"] for _ in range(2)] == ["b", "e"]


async def test_lone_group_member_gets_every_rapid_message_up_to_its_capacity(make_layer):
    """channels_redis #131: one subscriber got about 100 of N rapid group messages."""
    sender, owner = make_layer(capacity=300), make_layer(capacity=300)
    channel = await owner.new_channel()
    await owner.group_add("ticker", channel)
    await asyncio.gather(*(sender.group_send("ticker", {"type": "tick", "i": i}) for i in range(250)))
    received = [(await receive(owner, channel))["i"] for _ in range(250)]
    assert sorted(received) == list(range(250))
    assert owner.dropped == 0


async def test_channel_capacity_patterns_override_the_default(make_layer):
    layer = make_layer(capacity=100, channel_capacity={"small*": 1})
    await layer.send("small-queue", {"type": "x"})
    with pytest.raises(ChannelFull):
        await layer.send("small-queue", {"type": "y"})
    for _ in range(5):
        await layer.send("large-queue", {"type": "z"})


async def test_group_send_to_a_full_member_drops_and_counts_per_member(make_any_layer, caplog):
    caplog.set_level(logging.INFO, "hubbub.layers.redis")
    sender, owner = make_any_layer(), make_any_layer(capacity=2)
    full, roomy = await owner.new_channel(), await owner.new_channel()
    await owner.group_add("room", full)
    for i in range(2):
        await owner.group_add(f"room{i}", roomy)
    for i in range(5):
        await sender.group_send("room", {"type": "m", "i": i})
    await sender.group_send("room0", {"type": "other"})
    assert (await receive(owner, roomy))["type"] == "other"  # frames are read in order: all five are in
    assert owner.dropped == 3
    assert "1 of 1 channels over capacity in group room" in caplog.text
    assert [(await receive(owner, full))["i"] for _ in range(2)] == [0, 1]


async def test_expired_messages_are_not_delivered(make_layer):
    clock = ManualClock()
    layer = make_layer(expiry=1, clock=clock)
    channel = await layer.new_channel()
    await layer.send("slow-jobs", {"type": "old"})
    await layer.send(channel, {"type": "old"})
    clock.advance(1.2)
    await layer.send("slow-jobs", {"type": "new"})
    await layer.send(channel, {"type": "new"})
    assert (await receive(layer, "slow-jobs"))["type"] == "new"
    assert (await receive(layer, channel))["type"] == "new"


async def test_group_members_age_out_after_group_expiry(make_layer):
    clock = ManualClock()
    dead, sender = make_layer(group_expiry=1, clock=clock), make_layer(group_expiry=1, clock=clock)
    channel = await dead.new_channel()
    await dead.group_add("room", channel)
    assert await sender.group_count("room") == 1
    await dead.close_pools()  # the process dies without leaving its groups
    clock.advance(1.2)
    assert await sender.group_count("room") == 0
    await sender.group_send("room", {"type": "nobody"})
    assert await redis_command(sender, "ZCARD", sender.keys.routes("room")) == 0


# -- groups --------------------------------------------------------------------------------


async def test_group_send_reaches_every_member_in_every_process_and_not_those_that_left(make_any_layer):
    processes = [make_any_layer() for _ in range(3)]
    members = []
    for layer in processes:
        for _ in range(2):
            channel = await layer.new_channel()
            await layer.group_add("room", channel)
            members.append((layer, channel))
    gone_layer, gone = members.pop()
    await gone_layer.group_discard("room", gone)
    sender = make_any_layer()
    await sender.group_send("room", {"type": "hello"})
    for layer, channel in members:
        assert await receive(layer, channel) == {"type": "hello"}
    assert await nothing_arrives(gone_layer, gone)
    assert await sender.group_count("room") == 5


async def test_group_add_and_discard_of_another_process_channel_take_effect_there(make_any_layer):
    owner, manager, sender = make_any_layer(), make_any_layer(), make_any_layer()
    pubsub = isinstance(owner, RedisPubSubChannelLayer)
    channel = await owner.new_channel()
    await manager.group_add("news", channel)
    if pubsub:  # the owner subscribes to the group when it hears of the join
        await eventually(lambda: owner.subscribed_to_group("news"), what="the owner subscribed to the group")
    await sender.group_send("news", {"type": "first"})
    assert (await receive(owner, channel))["type"] == "first"
    await manager.group_discard("news", channel)
    if pubsub:  # ... and forgets the membership when it hears of the leave
        await eventually(lambda: owner.held()[1] == 0, what="the owner heard of the leave")
    await sender.group_send("news", {"type": "second"})
    assert await nothing_arrives(owner, channel)
    assert await sender.group_count("news") == 0


async def test_worker_channel_group_member_receives_group_messages(make_layer):
    layer = make_layer()
    await layer.group_add("jobs-group", "job-queue")
    await layer.group_send("jobs-group", {"type": "job"})
    assert await receive(layer, "job-queue") == {"type": "job"}
    await layer.group_discard("jobs-group", "job-queue")
    await layer.group_send("jobs-group", {"type": "job"})
    assert await nothing_arrives(layer, "job-queue")


async def test_group_count_counts_members_across_processes(make_layer):
    a, b = make_layer(), make_layer()
    assert await a.group_count("empty") == 0
    channels = [await a.new_channel() for _ in range(3)] + [await b.new_channel() for _ in range(2)]
    for channel in channels[:3]:
        await a.group_add("g", channel)
    for channel in channels[3:]:
        await b.group_add("g", channel)
    await a.group_add("g", channels[0])  # again: still one membership
    assert await b.group_count("g") == 5
    await a.group_discard("g", channels[0])
    await a.group_discard("g", "never-a-member")
    assert await b.group_count("g") == 4


async def test_group_send_costs_one_push_per_process_not_per_member(make_layer):
    owner, sender = make_layer(), make_layer()
    channels = [await owner.new_channel() for _ in range(200)]
    for channel in channels:
        await owner.group_add("crowd", channel)
    assert await redis_command(sender, "ZCARD", sender.keys.routes("crowd")) == 1
    await sender.group_send("crowd", {"type": "wave"})
    results = await asyncio.gather(*(receive(owner, channel) for channel in channels))
    assert all(result == {"type": "wave"} for result in results)


async def test_mass_group_discard_succeeds_on_bounded_connections(make_layer):
    layer = make_layer()
    channels = [await layer.new_channel() for _ in range(1000)]
    await asyncio.gather(*(layer.group_add("stadium", channel) for channel in channels))
    assert await layer.group_count("stadium") == 1000
    await asyncio.gather(*(layer.group_discard("stadium", channel) for channel in channels))
    assert await layer.group_count("stadium") == 0
    state = layer._state()
    if layer.cluster is None:
        assert len(state.links) == 1 and len(state.inbox_readers) == 1  # one pipe + one reader connection
    else:  # one pipe per master, one reader connection per virtual shard
        assert len(state.links[0].router.nodes) == 3 and len(state.inbox_readers) == len(state.links)


# -- receivers -----------------------------------------------------------------------------


async def test_worker_channel_messages_go_to_exactly_one_of_several_receivers(make_layer):
    sender = make_layer()
    workers = [make_layer() for _ in range(3)]
    got: list[list[int]] = [[] for _ in range(6)]

    async def work(index: int, layer: RedisChannelLayer) -> None:
        while True:
            got[index].append((await layer.receive("tasks"))["i"])

    tasks = [asyncio.ensure_future(work(i, workers[i % 3])) for i in range(6)]
    await eventually(lambda: all(worker.held()[0] == 1 for worker in workers), what="every worker waits on the channel")
    for i in range(300):
        await sender.send("tasks", {"type": "task", "i": i})
    await eventually(lambda: sum(map(len, got)) >= 300, what="all 300 tasks taken")
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    everything = [i for items in got for i in items]
    assert sorted(everything) == list(range(300))  # each exactly once
    assert sum(1 for items in got if items) >= 2  # and shared out


@pytest.mark.parametrize(
    "layer_class, kind",
    [
        (RedisChannelLayer, "process"),
        (RedisChannelLayer, "worker"),
        (RedisPubSubChannelLayer, "process"),  # its worker channels keep nothing while nobody listens
    ],
    ids=["list-process", "list-worker", "pubsub-process"],
)
async def test_cancelled_receives_under_load_lose_no_message(redis_target, redis_prefix, layer_class, kind):
    async with layer_factory(layer_class, redis_target, redis_prefix) as make_layer:
        sender, owner = make_layer(capacity=2000), make_layer(capacity=2000)
        channel = await owner.new_channel() if kind == "process" else "cancel-safe-queue"
        total = 1000

        async def produce() -> None:
            for i in range(total):
                await sender.send(channel, {"type": "n", "i": i})
                if i % 4 == 0:  # paced, so the receiver often waits (and is cancelled) even on a loaded machine
                    await asyncio.sleep(0.002)

        producer = asyncio.ensure_future(produce())
        received: list[int] = []
        timeouts = 0
        while len(received) < total:
            try:  # timeouts as short as a loop turn cancel receives at every possible point
                received.append((await asyncio.wait_for(owner.receive(channel), 0.0003 * (1 + len(received) % 7)))["i"])
            except asyncio.TimeoutError:
                timeouts += 1
                assert timeouts < 100_000
        await producer
        assert received == list(range(total))
        assert timeouts > 10


async def test_flush_deletes_this_prefix_only_and_queued_messages(make_layer, redis_target):
    layer = make_layer()
    other = RedisChannelLayer(**redis_config(redis_target), prefix=layer.prefix + "other")
    try:
        await other.send("keep-me", {"type": "kept"})
        channel = await layer.new_channel()
        await layer.group_add("g", channel)
        await layer.send("drop-me", {"type": "dropped"})
        await layer.flush()
        assert await layer.group_count("g") == 0
        assert await nothing_arrives(layer, "drop-me")
        assert await receive(other, "keep-me") == {"type": "kept"}
    finally:
        await other.close_pools()


async def test_layer_works_again_after_close_pools(make_layer):
    layer = make_layer()
    channel = await layer.new_channel()
    await layer.close_pools()
    await layer.send("after-close", {"type": "x"})
    assert await receive(layer, "after-close") == {"type": "x"}
    assert channel


def test_async_to_sync_group_send_1000_times_from_sync_code(make_layer):
    layer = make_layer(capacity=2000)
    async_to_sync(layer.group_add)("sync-room", "sync-inbox")
    errors = []

    def view() -> None:  # as a Django view, a management command or a Celery task would
        try:
            for i in range(1000):
                async_to_sync(layer.group_send)("sync-room", {"type": "n", "i": i})
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=view)
    thread.start()
    thread.join(50)
    assert not errors
    assert len(layer._states) <= 2  # closed loops' connections are dropped, not kept

    async def drain() -> list[int]:
        return [(await receive(layer, "sync-inbox"))["i"] for _ in range(1000)]

    assert async_to_sync(drain)() == list(range(1000))


async def test_memory_stays_flat_across_100000_group_deliveries(make_layer):
    psutil = pytest.importorskip("psutil")
    sender, owner = make_layer(), make_layer()
    channels = [await owner.new_channel() for _ in range(100)]
    for channel in channels:
        await owner.group_add("flat", channel)
    received = [0]

    async def consume(channel: str) -> None:
        while True:
            await owner.receive(channel)
            received[0] += 1

    async def rounds(count: int) -> None:
        for i in range(count):
            await sender.group_send("flat", {"type": "m", "i": i, "pad": "x" * 100})
            if i % 20 == 19:  # let the consumers keep up, so nothing piles up against capacity
                while received[0] < (i + 1) * 100:
                    await asyncio.sleep(0.001)

    consumers = [asyncio.ensure_future(consume(channel)) for channel in channels]
    await rounds(100)
    gc.collect()
    before = psutil.Process().memory_info().rss
    received[0] = 0
    await rounds(1000)  # 100,000 deliveries
    gc.collect()
    grown = psutil.Process().memory_info().rss - before
    for task in consumers:
        task.cancel()
    await asyncio.gather(*consumers, return_exceptions=True)
    assert owner.dropped == 0
    assert grown < 8 * 1024 * 1024, f"RSS grew by {grown} bytes"
    assert owner.held() == (0, 1)  # nothing kept for channels nobody reads


# -- encryption ----------------------------------------------------------------------------


async def test_encrypted_messages_round_trip_and_are_not_stored_in_clear(make_layer):
    layer = make_layer(symmetric_encryption_keys=["a-long-secret"])
    await layer.send("sealed", {"type": "secret", "text": "attack at dawn"})
    stored = await redis_command(layer, "LRANGE", layer.keys.channel("sealed"), 0, -1)
    assert b"attack at dawn" not in stored[0]
    assert await receive(layer, "sealed") == {"type": "secret", "text": "attack at dawn"}


async def test_message_under_another_key_is_rejected_and_counted(make_any_layer, caplog):
    alice = make_any_layer(symmetric_encryption_keys=["alice-key"])
    mallory = make_any_layer(symmetric_encryption_keys=["mallory-key"])
    channel = await alice.new_channel()
    await mallory.send(channel, {"type": "forged"})
    await alice.send(channel, {"type": "genuine"})
    assert await receive(alice, channel) == {"type": "genuine"}
    # the forged frame comes through Redis, the genuine one did not
    await eventually(lambda: alice.rejected, timeout=WAIT, what="the forged frame is rejected")
    assert alice.rejected == 1
    assert "symmetric_encryption_keys" in caplog.text


async def test_rotated_keys_still_read_messages_under_the_old_key(make_layer):
    old = make_layer(symmetric_encryption_keys=["old-key"])
    rotated = make_layer(symmetric_encryption_keys=["new-key", "old-key"])
    await old.send("rotation", {"type": "from-old"})
    assert await receive(rotated, "rotation") == {"type": "from-old"}


async def test_connect_disconnect_cycles_leave_nothing_behind(make_layer):
    layer = make_layer()
    for _i in range(1000):  # what each WebSocket connection does to the layer
        channel = await layer.new_channel()
        await layer.group_add("lobby", channel)
        listener = asyncio.ensure_future(layer.receive(channel))
        await asyncio.sleep(0)
        listener.cancel()
        await layer.group_discard("lobby", channel)
    await asyncio.sleep(0)
    assert layer.held() == (0, 0)
    assert await layer.group_count("lobby") == 0
    assert await redis_command(layer, "EXISTS", layer.keys.routes("lobby")) == 0


# -- with consumers --------------------------------------------------------------------------


@pytest.mark.parametrize("sync", [False, True])
async def test_consumers_in_groups_receive_group_messages_over_redis(make_layer, sync):
    from hubbub.generic.websocket import AsyncJsonWebsocketConsumer, JsonWebsocketConsumer
    from hubbub.testing import WebsocketCommunicator

    layer = make_layer()
    channel_layers.set("default", layer)  # the conftest fixture puts the in-memory layer back afterwards

    if sync:  # group_add / group_discard through async_to_sync, as Channels' sync consumers do

        class Consumer(JsonWebsocketConsumer):
            groups = ["lobby"]

            def lobby_news(self, event: dict) -> None:
                self.send_json({"news": event["text"]})

    else:

        class Consumer(AsyncJsonWebsocketConsumer):  # type: ignore[no-redef]
            groups = ["lobby"]

            async def lobby_news(self, event: dict) -> None:
                await self.send_json({"news": event["text"]})

    communicators = [WebsocketCommunicator(Consumer.as_asgi(), "/ws/") for _ in range(3)]
    for communicator in communicators:
        connected, _ = await communicator.connect()
        assert connected
    await make_layer().group_send("lobby", {"type": "lobby.news", "text": "hello"})
    for communicator in communicators:
        assert await communicator.receive_json_from(timeout=WAIT) == {"news": "hello"}
    for communicator in communicators:
        await communicator.disconnect()
    assert await layer.group_count("lobby") == 0

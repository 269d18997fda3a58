"""RedisPubSubChannelLayer against the shared Redis (a unique key prefix per test)."""

from __future__ import annotations

import asyncio
import decimal
from typing import AsyncIterator, Callable, List

import pytest

from hubbub.layers import channel_layers
from hubbub.layers.redis import RedisPubSubChannelLayer
from tests.test_layers_redis import WAIT, layer_factory, nothing_arrives, receive

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def make_layer(redis_target: Any, redis_prefix: str) -> AsyncIterator[Callable[..., RedisPubSubChannelLayer]]:
    async with layer_factory(RedisPubSubChannelLayer, redis_target, redis_prefix) as make:
        yield make


async def test_process_channel_message_reaches_its_owner(make_layer):
    sender, owner = make_layer(), make_layer()
    channel = await owner.new_channel()
    await sender.send(channel, {"type": "hello", "data": b"\x01"})
    assert await receive(owner, channel) == {"type": "hello", "data": b"\x01"}


async def test_group_send_reaches_members_in_every_process_but_not_those_that_left(make_layer):
    a, b, sender = make_layer(), make_layer(), make_layer()
    ca1, ca2, cb = await a.new_channel(), await a.new_channel(), await b.new_channel()
    for layer, channel in ((a, ca1), (a, ca2), (b, cb)):
        await layer.group_add("room", channel)
    await a.group_discard("room", ca2)
    await sender.group_send("room", {"type": "hi"})
    assert await receive(a, ca1) == {"type": "hi"}
    assert await receive(b, cb) == {"type": "hi"}
    assert await nothing_arrives(a, ca2)
    assert await sender.group_count("room") == 2


async def test_group_add_of_another_process_channel_reaches_it(make_layer):
    owner, manager = make_layer(), make_layer()
    channel = await owner.new_channel()
    await manager.group_add("news", channel)
    await asyncio.sleep(0.1)  # the owner subscribes when it hears of the join
    await manager.group_send("news", {"type": "first"})
    assert (await receive(owner, channel))["type"] == "first"
    await manager.group_discard("news", channel)
    await asyncio.sleep(0.1)
    await manager.group_send("news", {"type": "second"})
    assert await nothing_arrives(owner, channel)


async def test_worker_channel_receives_while_subscribed(make_layer):
    layer = make_layer()
    waiting = asyncio.ensure_future(layer.receive("pubsub-jobs"))
    await asyncio.sleep(0.1)
    await layer.send("pubsub-jobs", {"type": "job"})
    assert await asyncio.wait_for(waiting, WAIT) == {"type": "job"}


async def test_unserialisable_group_message_fails_at_sender_naming_its_type(make_layer):
    layer = make_layer()
    with pytest.raises(TypeError, match="Decimal"):
        await layer.group_send("room", {"type": "x", "price": decimal.Decimal("9.99")})


async def test_invalid_names_and_messages_raise_type_error(make_layer):
    layer = make_layer()
    with pytest.raises(TypeError):
        await layer.send("bad name", {"type": "x"})
    with pytest.raises(TypeError):
        await layer.group_add("bad group!", "channel")
    with pytest.raises(TypeError):
        await layer.group_send("room", {"no": "type"})


async def test_full_member_channel_drops_and_counts(make_layer):
    sender, owner = make_layer(), make_layer(capacity=2)
    channel = await owner.new_channel()
    await owner.group_add("room", channel)
    for i in range(5):
        await sender.group_send("room", {"type": "m", "i": i})
    assert [(await receive(owner, channel))["i"] for _ in range(2)] == [0, 1]
    assert owner.dropped == 3


async def test_cancelled_receives_lose_no_delivered_message(make_layer):
    sender, owner = make_layer(capacity=1000), make_layer(capacity=1000)
    channel = await owner.new_channel()
    total = 500

    async def produce() -> None:
        for i in range(total):
            await sender.send(channel, {"type": "n", "i": i})

    producer = asyncio.ensure_future(produce())
    received: List[int] = []
    while len(received) < total:
        try:
            received.append((await asyncio.wait_for(owner.receive(channel), 0.0003 * (1 + len(received) % 5)))["i"])
        except asyncio.TimeoutError:
            pass
    await producer
    assert received == list(range(total))


async def test_encrypted_messages_round_trip_and_wrong_key_is_rejected(make_layer):
    alice = make_layer(symmetric_encryption_keys=["alice-key"])
    mallory = make_layer(symmetric_encryption_keys=["mallory-key"])
    channel = await alice.new_channel()
    await mallory.send(channel, {"type": "forged"})
    await alice.send(channel, {"type": "genuine"})
    assert await receive(alice, channel) == {"type": "genuine"}
    assert alice.rejected == 1


def test_channels_redis_pubsub_backend_path_builds_this_layer(settings, redis_url):
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer", "CONFIG": {"hosts": [redis_url]}}
    }
    assert isinstance(channel_layers.make_backend("default"), RedisPubSubChannelLayer)

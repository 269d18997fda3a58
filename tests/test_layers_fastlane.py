"""The layers' "fastlane" extension: ``attach_direct`` / ``detach_direct`` (hubbub.layers.inbox).

Each test runs on the in-memory layer and on both Redis layers (the shared Redis under
a private prefix; skipped without Redis). On Redis the messages come from a second
layer instance, another "process", so they travel through Redis and the receiving
instance's reader, as in production; on the in-memory layer one instance does both.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from asgiref.sync import async_to_sync

from hubbub import metrics
from hubbub.exceptions import ChannelFull
from hubbub.layers import InMemoryChannelLayer
from hubbub.layers.redis import RedisChannelLayer, RedisPubSubChannelLayer
from tests.test_layers_redis import layer_factory
from tests.waiting import ManualClock, eventually

pytestmark = pytest.mark.timeout(60)

WAIT = 10.0

Pair = Callable[..., tuple[Any, Any]]


@pytest.fixture(params=["memory", "redis", "redis-pubsub"])
async def make_pair(request: Any) -> AsyncIterator[Pair]:
    """``make_pair(**config)``: ``(owner, sender)``, the layer receiving and the one sending to it."""
    if request.param == "memory":

        def make_memory(**config: Any) -> tuple[Any, Any]:
            layer = InMemoryChannelLayer(**config)
            return layer, layer

        yield make_memory
        return
    layer_class = RedisChannelLayer if request.param == "redis" else RedisPubSubChannelLayer
    url, prefix = request.getfixturevalue("redis_url"), request.getfixturevalue("redis_prefix")
    async with layer_factory(layer_class, url, prefix) as factory:

        def make_redis(**config: Any) -> tuple[Any, Any]:
            return factory(**config), factory(**config)

        yield make_redis


class Sink:
    """A fastlane sink that records what it is offered and answers ``takes``."""

    def __init__(self, takes: bool = True) -> None:
        self.takes = takes
        self.messages: list[dict[str, Any]] = []

    def __call__(self, message: dict[str, Any]) -> bool:
        self.messages.append(message)
        return self.takes


async def until_waiting(layer: Any, channel: str) -> None:
    """Return once a receiver waits on ``channel`` (in any loop)."""
    if isinstance(layer, InMemoryChannelLayer):  # a listening receiver's channel is listed, empty
        await eventually(lambda: channel in layer.channels, WAIT, f"a receiver waits on {channel}")
    else:
        await eventually(lambda: layer.receivers_waiting(channel), WAIT, f"a receiver waits on {channel}")


async def listening(layer: Any, channel: str) -> asyncio.Task[Any]:
    """A receive on ``channel`` that has started waiting."""
    task = asyncio.ensure_future(layer.receive(channel))
    await until_waiting(layer, channel)
    return task


async def stop(*tasks: asyncio.Task[Any]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def losses(layer: Any) -> int:
    """Every message ``layer``'s class counted as lost, whatever the cause."""
    name = type(layer).__name__
    return sum(count for (layer_name, _), count in metrics.messages_lost.counts.items() if layer_name == name)


async def sent(sender: Any, channel: str, message: dict[str, Any]) -> None:
    """Send, waiting out a ``ChannelFull`` the owner's receipts (batched, one round trip late) still cause."""

    async def fits() -> bool:
        try:
            await sender.send(channel, message)
        except ChannelFull:
            return False
        return True

    await eventually(fits, WAIT, f"{message} fits in {channel}")


def test_every_layer_advertises_the_extension():
    for layer_class in (InMemoryChannelLayer, RedisChannelLayer, RedisPubSubChannelLayer):
        assert "fastlane" in layer_class.extensions
        assert callable(layer_class.attach_direct) and callable(layer_class.detach_direct)


async def test_the_sink_takes_a_message_for_a_waiting_receiver_which_keeps_waiting_for_the_next(make_pair):
    """A taken message never wakes the receiver: it gets the next message the sink declines."""
    owner, sender = make_pair()
    channel = await owner.new_channel()
    sink = Sink()
    owner.attach_direct(channel, sink)
    receiving = await listening(owner, channel)
    await sender.send(channel, {"type": "a"})
    await eventually(lambda: sink.messages, WAIT, "the sink was offered the message")
    assert sink.messages == [{"type": "a"}]
    assert not receiving.done()
    sink.takes = False
    await sender.send(channel, {"type": "b"})
    assert await asyncio.wait_for(receiving, WAIT) == {"type": "b"}
    assert sink.messages == [{"type": "a"}, {"type": "b"}]


async def test_a_declined_message_is_handed_to_the_receiver(make_pair):
    owner, sender = make_pair()
    channel = await owner.new_channel()
    sink = Sink(takes=False)
    owner.attach_direct(channel, sink)
    receiving = await listening(owner, channel)
    await sender.send(channel, {"type": "a", "n": 1})
    assert await asyncio.wait_for(receiving, WAIT) == {"type": "a", "n": 1}
    assert sink.messages == [{"type": "a", "n": 1}]


async def test_queued_messages_never_reach_the_sink_and_keep_their_order(make_pair):
    """With nobody waiting, messages queue as usual and are received in order; the sink sees none."""
    owner, sender = make_pair()
    channel, marker = await owner.new_channel(), await owner.new_channel()
    sink = Sink()
    owner.attach_direct(channel, sink)
    for i in range(3):
        await sender.send(channel, {"type": "m", "i": i})
    await sender.send(marker, {"type": "marker"})  # same path, after them: once it is here, so are they
    assert await asyncio.wait_for(owner.receive(marker), WAIT) == {"type": "marker"}
    received = [await asyncio.wait_for(owner.receive(channel), WAIT) for _ in range(3)]
    assert [message["i"] for message in received] == [0, 1, 2]
    assert sink.messages == []


async def test_a_sink_that_raises_is_logged_once_and_its_messages_are_delivered(make_pair, caplog):
    owner, sender = make_pair()
    channel = await owner.new_channel()

    def broken(message: dict[str, Any]) -> bool:
        raise RuntimeError("sink bug")

    broken.__qualname__ = f"broken_{uuid.uuid4().hex[:8]}"  # the log's rate limit is per sink: a fresh one
    owner.attach_direct(channel, broken)
    caplog.set_level(logging.ERROR, logger="hubbub.layers")
    for i in range(3):
        receiving = await listening(owner, channel)
        await sender.send(channel, {"type": "m", "i": i})
        assert await asyncio.wait_for(receiving, WAIT) == {"type": "m", "i": i}
    lines = [record for record in caplog.records if broken.__qualname__ in record.getMessage()]
    assert len(lines) == 1
    assert "RuntimeError: sink bug" in lines[0].getMessage()
    assert lines[0].exc_info is None  # one line, no traceback


async def test_a_receiver_waiting_in_another_loop_gets_the_message_not_the_sink(make_pair):
    """A receiver of another thread's loop (async_to_sync) is handed its message there, as usual."""
    owner, _ = make_pair()
    if isinstance(owner, RedisPubSubChannelLayer):
        pytest.skip("each loop has its own channels on the pub/sub layer: messages are filed in their receiver's loop")
    channel = await owner.new_channel()
    sink = Sink()
    owner.attach_direct(channel, sink)
    got: list[Any] = []

    async def receive_there() -> None:  # bounded: a message that never comes fails the test, no thread is left
        try:
            got.append(await asyncio.wait_for(owner.receive(channel), WAIT))
        except asyncio.TimeoutError:
            got.append("nothing arrived")

    thread = threading.Thread(target=async_to_sync(receive_there), daemon=True)
    thread.start()
    await until_waiting(owner, channel)
    await owner.send(channel, {"type": "to.thread"})  # delivered from this loop, to the thread's receiver
    await asyncio.to_thread(thread.join, WAIT)
    assert got == [{"type": "to.thread"}]
    assert sink.messages == []


async def test_detach_stops_the_sink_and_ignores_a_sink_that_is_not_attached(make_pair):
    owner, sender = make_pair()
    channel = await owner.new_channel()
    sink, other = Sink(), Sink()
    owner.attach_direct(channel, sink)
    owner.detach_direct(channel, other)  # not this channel's sink: nothing changes
    owner.detach_direct("never.attached", other)
    receiving = await listening(owner, channel)
    await sender.send(channel, {"type": "a"})
    await eventually(lambda: sink.messages, WAIT, "the sink is still attached")
    owner.detach_direct(channel, sink)
    await sender.send(channel, {"type": "b"})
    assert await asyncio.wait_for(receiving, WAIT) == {"type": "b"}
    assert sink.messages == [{"type": "a"}] and other.messages == []


async def test_detach_of_a_bound_method_matches_the_method_attached():
    """Each read of a bound method is a new object: detach compares with ==, as a consumer needs."""

    class Consumer:
        def sink(self, message: dict[str, Any]) -> bool:
            raise AssertionError("detached sinks are not called")

    layer = InMemoryChannelLayer()
    consumer = Consumer()
    layer.attach_direct("fast.lane", consumer.sink)
    layer.detach_direct("fast.lane", consumer.sink)
    receiving = await listening(layer, "fast.lane")
    await layer.send("fast.lane", {"type": "a"})
    assert await asyncio.wait_for(receiving, WAIT) == {"type": "a"}


async def test_an_attached_channel_is_held_until_detached_then_forgotten():
    """With a sink, a channel nobody waits on is kept (memory stays bounded: it goes at detach)."""
    layer = InMemoryChannelLayer()
    sink = Sink()
    layer.attach_direct("fast.held", sink)
    assert layer.held() == (1, 0)
    layer.detach_direct("fast.held", sink)
    assert layer.held() == (0, 0)


async def test_flush_keeps_sinks_attached(make_pair):
    owner, sender = make_pair()
    channel = await owner.new_channel()
    sink = Sink()
    owner.attach_direct(channel, sink)
    await owner.flush()
    receiving = await listening(owner, channel)
    await sender.send(channel, {"type": "after.flush"})
    await eventually(lambda: sink.messages, WAIT, "the sink survived flush()")
    assert sink.messages == [{"type": "after.flush"}] and not receiving.done()
    await stop(receiving)


async def test_sweeps_keep_an_attached_channel_nobody_waits_on(make_pair):
    """The periodic sweep forgets idle inboxes, not one with a sink (its consumer is between receives)."""
    owner, sender = make_pair(clock=ManualClock(), expiry=10)
    channel, other = await owner.new_channel(), await owner.new_channel()
    sink = Sink()
    owner.attach_direct(channel, sink)
    owner.clock.advance(30)  # past the next sweep (the layers share the clock)
    await sender.send(other, {"type": "x"})  # sending (in memory) or filing it (Redis) sweeps when due
    assert await asyncio.wait_for(owner.receive(other), WAIT) == {"type": "x"}
    receiving = await listening(owner, channel)
    await sender.send(channel, {"type": "a"})
    await eventually(lambda: sink.messages, WAIT, "the sink survived the sweep")
    assert sink.messages == [{"type": "a"}] and not receiving.done()
    await stop(receiving)


async def test_group_send_offers_one_and_the_same_dict_to_every_members_sink(make_pair):
    """One fan-out, one message object: a consumer side can cache the frame it renders on its identity."""
    owner, sender = make_pair()
    channels = [await owner.new_channel() for _ in range(5)]
    sinks = [Sink() for _ in channels]
    for channel, sink in zip(channels, sinks, strict=True):
        await owner.group_add("fastlane-group", channel)
        owner.attach_direct(channel, sink)
    receivers = [await listening(owner, channel) for channel in channels]
    await sender.group_send("fastlane-group", {"type": "chat.message", "text": "hi"})
    await eventually(lambda: all(sink.messages for sink in sinks), WAIT, "every member's sink was offered it")
    first = sinks[0].messages[0]
    assert first == {"type": "chat.message", "text": "hi"}
    assert all(sink.messages == [first] and sink.messages[0] is first for sink in sinks)
    assert not any(receiver.done() for receiver in receivers)
    await stop(*receivers)


async def test_taken_messages_count_as_received_for_capacity_and_loss(make_pair):
    """Many more messages than the capacity go to the sink; the channel then fills exactly as before."""
    owner, sender = make_pair(capacity=2)
    channel = await owner.new_channel()
    sink = Sink()
    owner.attach_direct(channel, sink)
    lost_before = losses(owner)
    receiving = await listening(owner, channel)
    for i in range(6):  # a counted message's receipt must reach Redis, or the third would never fit
        await sent(sender, channel, {"type": "m", "i": i})
        await eventually(lambda i=i: len(sink.messages) == i + 1, WAIT, f"message {i} was taken")
    assert [message["i"] for message in sink.messages] == list(range(6))
    assert owner.dropped == 0 and losses(owner) == lost_before
    owner.detach_direct(channel, sink)
    await stop(receiving)
    for i in range(2):
        await sent(sender, channel, {"type": "q", "i": i})
    if isinstance(owner, RedisPubSubChannelLayer):  # the receiving process drops past capacity
        await sender.send(channel, {"type": "q", "i": 2})
        await eventually(lambda: owner.dropped == 1, WAIT, "the third queued message was dropped")
        assert losses(owner) == lost_before + 1
    else:
        with pytest.raises(ChannelFull):
            await sender.send(channel, {"type": "q", "i": 2})
        assert losses(owner) == lost_before
    assert [(await asyncio.wait_for(owner.receive(channel), WAIT))["i"] for _ in range(2)] == [0, 1]
    assert sink.messages[-1]["i"] == 5


async def test_a_taken_message_leaves_nothing_to_expire():
    """A taken message was never queued: expiry later drops nothing, counts no loss, keeps memberships."""
    clock = ManualClock()
    layer = InMemoryChannelLayer(clock=clock, expiry=10)
    sink = Sink()
    layer.attach_direct("fast.expiry", sink)
    await layer.group_add("expiry-group", "fast.expiry")
    lost_before = losses(layer)
    receiving = await listening(layer, "fast.expiry")
    await layer.group_send("expiry-group", {"type": "a"})
    await layer.send("fast.expiry", {"type": "b"})
    assert sink.messages == [{"type": "a"}, {"type": "b"}]
    clock.advance(11)
    await layer.group_send("expiry-group", {"type": "c"})  # purges what expired first
    assert await layer.group_count("expiry-group") == 1
    assert sink.messages[-1] == {"type": "c"} and losses(layer) == lost_before
    assert not receiving.done()
    await stop(receiving)

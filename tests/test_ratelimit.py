"""The per-connection inbound rate limit: token buckets for frames and bytes, on a fake clock."""

from __future__ import annotations

import pytest

from hubbub.generic.websocket import AsyncWebsocketConsumer, WebsocketConsumer
from hubbub.ratelimit import InboundRateLimit
from hubbub.testing import WebsocketCommunicator


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_of_one_seconds_frames_passes_then_the_rate_holds():
    clock = Clock()
    limit = InboundRateLimit(10, None, clock)
    assert all(limit.allows(1) for _ in range(10))
    assert not limit.allows(1)
    clock.now += 0.5  # half a second refills five frames
    assert sum(limit.allows(1) for _ in range(10)) == 5
    clock.now += 60  # never more than one second's allowance
    assert sum(limit.allows(1) for _ in range(30)) == 10


def test_bytes_per_second_counts_sizes_and_a_frame_larger_than_a_second_never_passes():
    clock = Clock()
    limit = InboundRateLimit(None, 1000, clock)
    assert limit.allows(600) and not limit.allows(600)
    clock.now += 0.2
    assert limit.allows(600)  # 400 left + 200 refilled
    clock.now += 10
    assert not limit.allows(1001)
    assert limit.allows(1000)


def test_a_refused_frame_takes_nothing_from_either_bucket():
    clock = Clock()
    limit = InboundRateLimit(2, 100, clock)
    assert not limit.allows(500)
    assert limit.allows(50) and limit.allows(50) and not limit.allows(1)
    assert limit.describe() == "2 frames/s and 100 bytes/s"


@pytest.mark.parametrize("consumer", [AsyncWebsocketConsumer, WebsocketConsumer])
@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_messages_per_second": 0},
        {"max_messages_per_second": -1},
        {"max_bytes_per_second": "1000"},
        {"max_bytes_per_second": True},
    ],
)
def test_a_bad_limit_is_refused_when_the_route_is_built(consumer, kwargs):
    name = next(iter(kwargs))
    with pytest.raises(ValueError, match=f"{consumer.__name__}.{name} must be None \\(no limit\\) or a number > 0"):
        consumer.as_asgi(**kwargs)


def test_a_bad_limit_on_the_class_is_refused_too():
    class Limited(AsyncWebsocketConsumer):
        max_messages_per_second = 0

    with pytest.raises(ValueError, match="Limited.max_messages_per_second"):
        Limited.as_asgi()


class Echo(AsyncWebsocketConsumer):
    async def receive(self, text_data=None, bytes_data=None):
        await self.send(text_data=text_data)


async def test_over_the_limit_the_consumer_closes_1008_and_ignores_the_frames_after():
    comm = WebsocketCommunicator(Echo.as_asgi(max_messages_per_second=3), "/ws/")
    await comm.connect()
    for n in range(6):
        await comm.send_to(text_data=f"m{n}")
    assert [await comm.receive_from() for _ in range(3)] == ["m0", "m1", "m2"]
    closed = await comm.receive_output()
    assert closed == {"type": "websocket.close", "code": 1008, "reason": "over the inbound rate limit (3 frames/s)"}
    assert await comm.receive_nothing()  # the three frames after the limit tripped: ignored, no second close
    await comm.disconnect()


async def test_off_by_default():
    comm = WebsocketCommunicator(Echo.as_asgi(), "/ws/")
    await comm.connect()
    for n in range(500):
        await comm.send_to(text_data=str(n))
    assert [await comm.receive_from() for _ in range(500)] == [str(n) for n in range(500)]
    await comm.disconnect()

"""RedisPubSubChannelLayer against the shared Redis (a unique key prefix per test).

The checks both Redis layers must pass run on this layer too, from tests/test_layers_redis.py
(its ``make_any_layer`` fixture); here are the ones only the pub/sub layer has.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from hubbub.layers.redis import RedisPubSubChannelLayer
from tests.test_layers_redis import WAIT, layer_factory
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def make_layer(redis_target: Any, redis_prefix: str) -> AsyncIterator[Callable[..., RedisPubSubChannelLayer]]:
    async with layer_factory(RedisPubSubChannelLayer, redis_target, redis_prefix) as make:
        yield make


async def test_worker_channel_receives_while_subscribed(make_layer):
    layer = make_layer()
    waiting = asyncio.ensure_future(layer.receive("pubsub-jobs"))
    await eventually(lambda: layer.subscribed_to_channel("pubsub-jobs"), what="the receiver is subscribed")
    await layer.send("pubsub-jobs", {"type": "job"})
    assert await asyncio.wait_for(waiting, WAIT) == {"type": "job"}

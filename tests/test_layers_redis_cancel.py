"""Stopping a Redis layer's readers at the moment they finish connecting (shared Redis, own prefix).

Under load, ``close_pools()`` can land in the same turn of the event loop as the end of
a reader's connection handshake (the fixtures of tests/extension_layers.py hung there
now and then). These tests put it exactly there: the handshake step is wrapped so that
the close starts as soon as Redis has answered the reader's PING.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from hubbub.layers.redis import RedisChannelLayer, RedisPubSubChannelLayer
from hubbub.layers.redis import connection as redis_connection

pytestmark = pytest.mark.timeout(60)

#: Generous bound for a close that takes milliseconds (the machine may be loaded).
CLOSE_WITHIN = 10.0


def close_as_handshake_ends(monkeypatch: Any, layer: Any) -> asyncio.Future[asyncio.Task[None]]:
    """Make the next connection of ``layer`` start ``layer.close_pools()`` in the turn its PING is answered.

    The future returned resolves to the task running that close.
    """
    closing: asyncio.Future[asyncio.Task[None]] = asyncio.get_running_loop().create_future()
    handshake: Callable[[Any], Awaitable[None]] = redis_connection._connect_and_ping

    async def handshake_then_close(connection: Any) -> None:
        await handshake(connection)
        if not closing.done():
            closing.set_result(asyncio.get_running_loop().create_task(layer.close_pools()))

    monkeypatch.setattr(redis_connection, "_connect_and_ping", handshake_then_close)
    return closing


async def assert_closed(closing: asyncio.Future[asyncio.Task[None]], before: set[asyncio.Task[Any]]) -> None:
    """The close started, finished within ``CLOSE_WITHIN`` s, and left none of the layer's tasks running."""
    close = await asyncio.wait_for(closing, CLOSE_WITHIN)
    done, _ = await asyncio.wait([close], timeout=CLOSE_WITHIN)
    assert done, f"close_pools() did not finish within {CLOSE_WITHIN:g} s"
    close.result()
    left = [task for task in asyncio.all_tasks() - before if task is not asyncio.current_task()]
    assert not left, f"tasks still running after close_pools(): {left}"


async def test_pubsub_close_pools_finishes_when_it_lands_as_the_subscriber_connects(
    redis_url,
    redis_prefix,
    monkeypatch,
):
    """A pub/sub ``close_pools()`` started as the subscriber's connection answers stops the subscriber and ends."""
    layer = RedisPubSubChannelLayer(hosts=[redis_url], prefix=redis_prefix)
    closing = close_as_handshake_ends(monkeypatch, layer)
    before = asyncio.all_tasks()
    channel = await asyncio.wait_for(layer.new_channel(), CLOSE_WITHIN)  # starts the subscriber
    assert channel.startswith("specific.")
    await assert_closed(closing, before)


async def test_list_close_pools_finishes_when_it_lands_as_a_worker_reader_connects(
    redis_url,
    redis_prefix,
    monkeypatch,
):
    """A list-layer ``close_pools()`` started as a worker channel's BLPOP reader connects stops the reader and ends."""
    layer = RedisChannelLayer(hosts=[redis_url], prefix=redis_prefix)
    closing = close_as_handshake_ends(monkeypatch, layer)
    before = asyncio.all_tasks()
    receiving = asyncio.get_running_loop().create_task(layer.receive("work.queue"))  # starts the reader
    before.add(receiving)  # a receiver is the caller's: close_pools() leaves it waiting
    try:
        await assert_closed(closing, before)
    finally:
        receiving.cancel()
        await asyncio.gather(receiving, return_exceptions=True)

"""Layer micro-benchmarks, one layer per process: ``python -m bench.micro '<job as JSON>'``.

No WebSockets and no server: the layer's own API called in a loop on uvloop, each
operation for a fixed time (at least one round), wall-clock rates reported.
Redis layers talk to the private redis-server, which runs on the other core.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import django
import uvloop
from django.conf import settings

#: Layer name -> (import path, whether it takes Redis hosts: True, or "cluster" for a Redis Cluster).
LAYERS: dict[str, tuple] = {
    "hubbub inmemory": ("hubbub.layers.InMemoryChannelLayer", False),
    "hubbub redis": ("hubbub.layers.redis.RedisChannelLayer", True),
    "hubbub redis cluster": ("hubbub.layers.redis.RedisChannelLayer", "cluster"),
    "hubbub pubsub": ("hubbub.layers.redis.RedisPubSubChannelLayer", True),
    "channels inmemory": ("channels.layers.InMemoryChannelLayer", False),
    "channels redis": ("channels_redis.core.RedisChannelLayer", True),
    "channels pubsub": ("channels_redis.pubsub.RedisPubSubChannelLayer", True),
}

MESSAGE = {"type": "bench.message", "text": "x" * 64}
#: Extra seconds an operation (set-up included) may take past its time, so a lost message or a
#: stuck layer ends that operation, not the run. One timeout per operation, none per step.
STEP_TIMEOUT = 10.0
CLOSE_TIMEOUT = 5.0
#: Channels added to (then discarded from) a group to time group_add and group_discard.
MEMBERSHIP_CHANNELS = 500


def make_layer(name: str, redis_url: str, prefix: str, cluster_urls: list[str] | None = None) -> Any:
    from django.utils.module_loading import import_string

    path, redis = LAYERS[name]
    cls = import_string(path)
    if redis == "cluster":
        return cls(cluster=cluster_urls, prefix=prefix)
    return cls(hosts=[redis_url], prefix=prefix) if redis else cls()


async def _timed(seconds: float, step: Callable[[], Any]) -> tuple:
    """Run ``step`` once to warm up, then repeatedly for ``seconds``; (rounds, elapsed seconds)."""
    await step()  # warm-up: connections opened, code paths taken
    rounds, started = 0, time.perf_counter()
    while True:
        await step()
        rounds += 1
        elapsed = time.perf_counter() - started
        if elapsed >= seconds:
            return rounds, elapsed


async def send_receive(layer: Any, seconds: float) -> dict[str, float]:
    channel = await layer.new_channel()

    async def step() -> None:
        await layer.send(channel, MESSAGE)
        await layer.receive(channel)

    rounds, elapsed = await _timed(seconds, step)
    return {"per_s": rounds / elapsed, "us": elapsed * 1e6 / rounds}


async def group_send(layer: Any, members: int, seconds: float) -> dict[str, float]:
    group = f"fanout{members}"
    channels: list[str] = [await layer.new_channel() for _ in range(members)]
    for channel in channels:
        await layer.group_add(group, channel)
    await asyncio.sleep(0.2)  # let subscriptions settle (pub/sub layers lose messages sent before)

    async def step() -> None:
        await layer.group_send(group, MESSAGE)
        for channel in channels:
            await layer.receive(channel)

    rounds, elapsed = await _timed(seconds, step)
    for channel in channels:
        await layer.group_discard(group, channel)
    return {"deliveries_per_s": rounds * members / elapsed, "us_per_group_send": elapsed * 1e6 / rounds}


async def group_add_discard(layer: Any) -> dict[str, float]:
    """Mean cost of one group_add and of one group_discard, for channels of this process."""
    channels = [await layer.new_channel() for _ in range(MEMBERSHIP_CHANNELS)]
    started = time.perf_counter()
    for channel in channels:
        await layer.group_add("membership", channel)
    added = time.perf_counter()
    for channel in channels:
        await layer.group_discard("membership", channel)
    discarded = time.perf_counter()
    return {
        "group_add_us": (added - started) * 1e6 / len(channels),
        "group_discard_us": (discarded - added) * 1e6 / len(channels),
    }


async def _close(layer: Any) -> None:
    """Close the layer's connections, giving up after a few seconds (the process ends next)."""
    for method in ("close", "close_pools"):
        if hasattr(layer, method):
            with contextlib.suppress(Exception):  # best effort: a layer that cannot close must not lose the results
                await asyncio.wait_for(getattr(layer, method)(), CLOSE_TIMEOUT)
            return


def _being_cancelled() -> bool:
    """Whether this task itself is being cancelled (Python < 3.11 cannot tell: assume so)."""
    cancelling = getattr(asyncio.current_task(), "cancelling", None)
    return cancelling is None or cancelling() > 0


async def run(job: dict[str, Any]) -> dict[str, Any]:
    layer = make_layer(job["layer"], job["redis_url"], job["prefix"], job.get("cluster_urls"))
    seconds = job["seconds"]
    operations: dict[str, Callable[[], Awaitable[dict[str, float]]]] = {
        "send_receive": lambda: send_receive(layer, seconds),
        "group_send_100": lambda: group_send(layer, 100, seconds),
        "group_send_1000": lambda: group_send(layer, 1000, seconds),
        "membership": lambda: group_add_discard(layer),
    }
    result: dict[str, Any] = {}
    try:
        for name, operation in operations.items():
            try:
                result[name] = await asyncio.wait_for(operation(), seconds + STEP_TIMEOUT)
            except asyncio.CancelledError:
                if _being_cancelled():
                    raise
                result[name] = {"error": "CancelledError raised inside the layer"}
            except Exception as exc:  # report it and go on with the next operation
                result[name] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
    finally:
        await _close(layer)
    return result


def run_job_main(run: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]) -> None:
    """The job process's entry: the job from argv, bare Django settings, the result as a JSON line."""
    job = json.loads(sys.argv[1])
    settings.configure(INSTALLED_APPS=[], USE_TZ=True)
    django.setup()
    sys.stdout.write(json.dumps(uvloop.run(asyncio.wait_for(run(job), job["timeout"]))) + "\n")


if __name__ == "__main__":
    run_job_main(run)

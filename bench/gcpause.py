"""Garbage collection pauses during broadcasts, with and without ``HUBBUB_GC``.

``python -m bench.gcpause [--members 20000] [--broadcasts 30]`` runs each configuration in a
fresh interpreter (so each starts with CPython's own collector state) and prints one line
each. No sockets: ``members`` tasks wait on hubbub's in-memory layer as consumers' listeners
do, each holding a connection-like structure of about as many container objects as a
uvicorn + hubbub WebSocket holds (``CONTAINERS``), and one task broadcasts to their group.
Per configuration it reports the broadcasts' time (median and longest, from ``group_send``
to the last member's receipt) and the collections ``hubbub.gctune`` measured meanwhile.

``python -m bench.gcpause --server [--stages 1000,5000,10000]`` does it over real sockets:
for each configuration, the benchmark site (``bench/site``, in-memory layer) on uvicorn,
pinned to core 0 with ``HUBBUB_GC`` set, and ``bench.load``'s broadcast job from core 1,
growing the group in stages; then hubbub's ``hubbub_gc_*`` metrics are scraped from the
server (``/metrics``). The server applies ``HUBBUB_GC`` the way plain uvicorn does: start-up
freeze at the first WebSocket, then a freeze per wave of connections.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import subprocess
import sys
import time
from typing import Any

#: Container objects per idle connection: a closed uvicorn + hubbub WebSocket left about 110
#: in reference cycles (hubbub.gctune), and an open one holds its task and frames on top.
CONTAINERS = 120

CONFIGS: dict[str, Any] = {
    "cpython default": None,
    "freeze only": {"thresholds": None},
    "freeze + 10000/10/10": {"thresholds": (10_000, 10, 10)},
    "freeze + 50000/10/10": {"thresholds": (50_000, 10, 10)},
    "HUBBUB_GC = {} (defaults)": {},
    "thresholds only": {"freeze": False},
}


class Connection:
    """An idle connection's heap: nested dicts, lists and small objects, all alive for the run."""

    def __init__(self, index: int):
        self.scope = {"type": "websocket", "path": "/ws/", "headers": [(b"h", b"v") for _ in range(10)]}
        self.state = [{"n": index, "seen": []} for _ in range((CONTAINERS - 14) // 2)]
        self.received = 0


async def member(layer: Any, channel: str, connection: Connection, done: list[Any]) -> None:
    while True:
        message = await layer.receive(channel)
        connection.received += 1
        frame = {"type": "websocket.send", "text": message["text"]}  # what a forward sends
        connection.state[0]["seen"] = [frame]
        done[0] -= 1
        if done[0] == 0:
            done[1].set()


async def run(members: int, broadcasts: int) -> dict[str, Any]:
    from hubbub import gctune
    from hubbub.layers import InMemoryChannelLayer

    layer = InMemoryChannelLayer(capacity=10)
    connections = [Connection(i) for i in range(members)]
    done: list[Any] = [0, asyncio.Event()]
    tasks = []
    for connection in connections:
        channel = await layer.new_channel()
        await layer.group_add("room", channel)
        tasks.append(asyncio.create_task(member(layer, channel, connection, done)))
    await asyncio.sleep(0)
    gctune.started()  # warmed up: the start-up freeze takes every member (no-op without HUBBUB_GC)
    longest = [0.0, 0.0]  # this window's longest pause (gctune's is since start)

    def window(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            longest[1] = time.perf_counter()
        else:
            longest[0] = max(longest[0], time.perf_counter() - longest[1])

    gc.callbacks.append(window)
    before = gctune.stats()
    durations = []
    for i in range(broadcasts):
        done[0], done[1] = members, asyncio.Event()
        started = time.perf_counter()
        await layer.group_send("room", {"type": "room.message", "text": f"message {i}"})
        await done[1].wait()
        durations.append(time.perf_counter() - started)
    after = gctune.stats()
    gc.callbacks.remove(window)
    for task in tasks:
        task.cancel()
    return {
        "median_ms": 1000 * statistics.median(durations),
        "max_ms": 1000 * max(durations),
        "collections": [a - b for a, b in zip(after.collections, before.collections, strict=True)],
        "pause_total_ms": 1000 * (sum(after.pause_seconds) - sum(before.pause_seconds)),
        "pause_max_ms": 1000 * longest[0],
        "frozen": after.frozen_objects,
    }


def child(config: Any, members: int, broadcasts: int) -> None:
    import django
    from django.conf import settings

    options: dict[str, Any] = {"INSTALLED_APPS": ["hubbub"], "LOGGING_CONFIG": None}
    if config is not None:
        options["HUBBUB_GC"] = config
    settings.configure(**options)
    django.setup()  # hubbub's ready() installs HUBBUB_GC and the pause measurement
    print(json.dumps(asyncio.run(run(members, broadcasts))))


def serve(port: int, config: Any) -> None:
    """The benchmark site on uvicorn with ``HUBBUB_GC = config`` (``None``: unset) and ``/metrics``."""
    import django
    import uvicorn
    from django.conf import settings

    from bench.site import settings as site_settings

    options = {name: getattr(site_settings, name) for name in dir(site_settings) if name.isupper()}
    if config is not None:
        options["HUBBUB_GC"] = config
    settings.configure(**options)
    django.setup()
    from bench.site.asgi import application as site
    from hubbub.metrics import metrics_app

    async def application(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/metrics":
            await metrics_app(scope, receive, send)
        else:
            await site(scope, receive, send)

    uvicorn.run(
        application, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="off", backlog=4096
    )


def _by_generation(samples: dict[str, Any], name: str) -> list[float]:
    found = {labels["generation"]: value for labels, value in samples.get(name, [])}
    return [found.get(str(generation), 0.0) for generation in range(3)]


def over_sockets(stages: list[int], names: list[str]) -> None:
    from urllib.request import urlopen

    from bench.procs import Child, pinned
    from bench.runner import run_job
    from hubbub.management.commands.hubbub_status import parse
    from tests.servers import free_port

    print(f"bench.load broadcast, stages {stages}, server on core 0 (uvicorn, in-memory layer)")
    for name in names:
        port = free_port()
        args = pinned(
            [sys.executable, "-m", "bench.gcpause", "--serve", str(port), "--child", json.dumps(CONFIGS[name])], 0
        )
        with Child(args, port=port) as server:
            job = {
                "kind": "broadcast",
                "ports": [port],
                "pids": [server.pid],
                "redis_pid": None,
                "stages": stages,
                "sync_stages": [],
                "fixed_stages": stages[-1:],
                "warmup": 0.5,
                "sat_seconds": 3.0,
                "fixed_seconds": 3.0,
                "drain_seconds": 6.0,
                "window": 3,
                "fixed_fraction": 0.5,
                "timeout": 120 + 12 * len(stages),
            }
            result = run_job("bench.load", job)
            with urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as response:
                gc_samples = parse(response.read().decode())
        if "error" in result:
            print(f"{name:34} error: {result['error'][-300:]}")
            continue

        collections = _by_generation(gc_samples, "hubbub_gc_collections_total")
        pauses = _by_generation(gc_samples, "hubbub_gc_pause_seconds_total")
        longest = _by_generation(gc_samples, "hubbub_gc_pause_max_seconds")
        freezes = {labels["reason"]: int(value) for labels, value in gc_samples.get("hubbub_gc_freezes_total", [])}
        last = result["stages"][-1]
        fixed = last.get("fixed") or {}
        saturated = ", ".join(
            f"{stage['members']}: {stage['saturated']['cpu_us_per_delivery']:.2f} µs" for stage in result["stages"]
        )
        print(
            f"{name:34} CPU/delivery {saturated} | {last['members']} members at half rate: "
            f"p50 {fixed.get('p50_ms', float('nan')):.1f} ms p90 {fixed.get('p90_ms', float('nan')):.1f} ms "
            f"p99 {fixed.get('p99_ms', float('nan')):.1f} ms\n{'':34} collections "
            f"{[int(n) for n in collections]}, pauses {1000 * sum(pauses):.0f} ms total, "
            f"longest per generation {[round(1000 * m, 1) for m in longest]} ms, freezes {freezes}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=20_000)
    parser.add_argument("--broadcasts", type=int, default=30)
    parser.add_argument("--only", help="comma-separated configuration names")
    parser.add_argument("--server", action="store_true", help="over real sockets (bench.load, uvicorn)")
    parser.add_argument("--stages", default="1000,5000,10000", help="group sizes, with --server")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        serve(args.serve, json.loads(args.child))
        return
    if args.child is not None:
        child(json.loads(args.child), args.members, args.broadcasts)
        return
    names = args.only.split(",") if args.only else list(CONFIGS)
    if args.server:
        over_sockets([int(size) for size in args.stages.split(",")], names)
        return
    print(f"{args.members} members, {args.broadcasts} broadcasts")
    for name in names:
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.gcpause",
                "--members",
                str(args.members),
                "--broadcasts",
                str(args.broadcasts),
                "--child",
                json.dumps(CONFIGS[name]),
            ],
            capture_output=True,
            text=True,
            timeout=600,
            check=True,
        ).stdout
        r = json.loads(out.strip().splitlines()[-1])
        print(
            f"{name:34} broadcast median {r['median_ms']:7.1f} ms  max {r['max_ms']:7.1f} ms | "
            f"collections {r['collections']} pauses {r['pause_total_ms']:7.1f} ms total, "
            f"{r['pause_max_ms']:6.1f} ms longest | frozen {r['frozen']}"
        )


if __name__ == "__main__":
    main()

"""Beyond-Channels features, one layer per process: ``python -m bench.features '<job as JSON>'``.

Two layer instances stand for two server processes (on Redis they share nothing but
Redis; the in-memory layer is one instance, as one process is all it serves):

* presence: a member of group ``room`` on instance B waits for ``presence.join``;
  instance A adds a member; the time from the call to B's receipt is one sample.
* recovery: ``count`` messages go to a group keeping history while its subscriber is
  away; one ``group_history`` call (epoch and offset from before) brings them back.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from .micro import make_layer, run_job_main

#: Presence join/leave pairs timed per run, and messages missed for the recovery timing.
PRESENCE_SAMPLES = 200
RECOVERY_COUNT = 1000


def _percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def presence_latency(a: Any, b: Any) -> dict[str, float]:
    watcher = await b.new_channel()
    await b.group_add("room", watcher)
    await asyncio.sleep(0.05)  # the route of B's member reaches Redis before the first join
    samples = []
    for n in range(PRESENCE_SAMPLES):
        member = await a.new_channel()
        started = time.perf_counter()
        await a.presence_add("room", member, info={"n": n})
        while (await b.receive(watcher))["type"] != "presence.join":
            pass
        samples.append(time.perf_counter() - started)
        await a.presence_remove("room", member)
        while (await b.receive(watcher))["type"] != "presence.leave":
            pass
    return {"p50_ms": _percentile(samples, 0.5) * 1e3, "p99_ms": _percentile(samples, 0.99) * 1e3}


async def recovery_time(a: Any) -> dict[str, float]:
    a.configure_group("kept", history=RECOVERY_COUNT)
    await a.group_send("kept", {"type": "warm"})
    mark = await a.group_history("kept", epoch=None)
    mark = await a.group_history("kept", epoch=mark["epoch"], since=mark["offset"])
    for n in range(RECOVERY_COUNT):
        await a.group_send("kept", {"type": "news", "n": n})
    started = time.perf_counter()
    history = await a.group_history("kept", epoch=mark["epoch"], since=mark["offset"])
    elapsed = time.perf_counter() - started
    if not history["recovered"] or [m["n"] for m in history["messages"]] != list(range(RECOVERY_COUNT)):
        return {"error": "recovery did not return the missed messages in order"}
    return {"recover_1000_ms": elapsed * 1e3}


async def run(job: dict[str, Any]) -> dict[str, Any]:
    a = make_layer(job["layer"], job["redis_url"], job["prefix"])
    b = a if job["layer"] == "hubbub inmemory" else make_layer(job["layer"], job["redis_url"], job["prefix"])
    try:
        return {"presence": await presence_latency(a, b), "recovery": await recovery_time(a)}
    finally:
        for layer in {id(a): a, id(b): b}.values():
            closing = getattr(layer, "close_pools", None) or getattr(layer, "close", None)
            if closing is not None:
                await closing()


if __name__ == "__main__":
    run_job_main(run)

"""Idle job: open WebSockets that join group ``bench`` and then say nothing.

Connections are added in stages; for each batch the job reads the server CPU the
set-up cost and, once the server has settled, its resident memory per connection
above a baseline taken with a few warm-up connections open.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from picows import WSListener, WSTransport

from .meter import Meter
from .ws import connect_many

#: Connections opened before the baseline reading, so imports and caches are warm.
WARM_UP_CONNECTIONS = 50


async def run(job: dict[str, Any]) -> dict[str, Any]:
    meter = Meter(job["pids"])
    transports: list[WSTransport] = []
    more, failed = await connect_many(job["ports"], "ws/group", WARM_UP_CONNECTIONS, WSListener)
    transports += more
    await asyncio.sleep(job["settle_seconds"])
    base = meter.read()
    stages = []
    for count in job["stages"]:
        before, started = meter.read(), time.perf_counter()
        more, batch_failed = await connect_many(
            job["ports"], "ws/group", count - len(transports), WSListener, start=len(transports)
        )
        elapsed = time.perf_counter() - started
        await asyncio.sleep(job["settle_seconds"])  # let the server finish the last handshakes' work
        after = meter.read()
        added = max(len(more), 1)
        transports += more
        failed += batch_failed
        stages.append(
            {
                "planned": count,
                "connections": len(transports),
                "failed": failed,
                "connects_per_s": len(more) / elapsed,
                "cpu_ms_per_connect": (after.cpu - before.cpu) * 1e3 / added,
                "rss_kib_per_connection": (after.rss - base.rss) / 1024 / max(len(transports) - WARM_UP_CONNECTIONS, 1),
            }
        )
    return {"stages": stages}

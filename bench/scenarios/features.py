"""Scenario 5, beyond Channels: presence update latency across two processes and the time to
recover 1,000 missed messages, on each hubbub layer (Channels has neither feature).

Memory with one stalled client needs servers and a client that stops reading; it is
measured by ``tests/e2e/test_backpressure.py`` (see docs/operations.md).
"""

from __future__ import annotations

import uuid
from typing import Any

from ..plan import Plan
from ..procs import CLIENT_CORE, Child
from ..report import Section, Table
from ..runner import run_job, timed
from ..stats import median
from .broadcast import hubbub_redis_available

LAYERS = ("hubbub inmemory", "hubbub redis", "hubbub pubsub")
COLUMNS = [
    ("presence", "p50_ms", "presence join p50 ms"),
    ("presence", "p99_ms", "presence join p99 ms"),
    ("recovery", "recover_1000_ms", "recover 1,000 missed ms"),
]


def run(plan: Plan, redis: Child | None) -> Section:
    section = Section("5. beyond Channels: presence and recovery (two layer instances = two processes)")
    chosen = [name for name in LAYERS if name == "hubbub inmemory" or (redis is not None and hubbub_redis_available())]
    section.notes += [f"{name}: skipped, no Redis" for name in LAYERS if name not in chosen]
    redis_url = f"redis://127.0.0.1:{redis.port}/0" if redis is not None else ""
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in chosen}
    for _ in range(plan.repeats):
        for name in chosen:
            job = {"layer": name, "redis_url": redis_url, "prefix": "bench" + uuid.uuid4().hex[:10], "timeout": 60}
            runs[name].append(timed(name, lambda job=job: run_job("bench.features", job, core=CLIENT_CORE)))
    table = Table(f"median of {plan.repeats} run(s)", ["layer", *(title for _, _, title in COLUMNS)])
    medians = {}
    for name, results in runs.items():
        section.notes += [f"{name}: {r['error']}" for r in results if "error" in r]
        section.notes += [
            f"{name} {part}: {r[part]['error']}"
            for r in results
            for part in ("presence", "recovery")
            if isinstance(r.get(part), dict) and "error" in r[part]
        ]
        medians[name] = {
            f"{part}.{key}": median([r.get(part, {}).get(key) for r in results]) for part, key, _ in COLUMNS
        }
        table.rows.append([name, *(medians[name][f"{part}.{key}"] for part, key, _ in COLUMNS)])
    section.tables.append(table)
    section.data = {"medians": medians, "runs": runs}
    return section

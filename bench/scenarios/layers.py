"""Scenario 3, layer micro-benchmarks: each layer's API in a loop, one process, no WebSockets.

Targets: in-memory send+receive ≥ 3 × Channels' InMemoryChannelLayer and group_send
deliveries ≥ 20 ×; Redis send+receive ≥ 10 × channels_redis' RedisChannelLayer,
Redis group_send ≥ 5 ×, and group_add at most 1/5 of its cost. On a private Redis
Cluster (six nodes on the server core): group_send to 1,000 members ≥ 5 × channels_redis
on one Redis, and at least 1 / 1.3 of hubbub's own rate on one Redis.
"""

from __future__ import annotations

import contextlib
import uuid
from typing import Any

from ..micro import LAYERS
from ..plan import Plan
from ..procs import CLIENT_CORE, SERVER_CORE, Child, pinned
from ..report import Check, Section, Table, check, times
from ..runner import run_job, timed
from ..stats import median, ratio
from .broadcast import hubbub_redis_available

#: (operation, field, column title) in the order the table shows them.
COLUMNS = [
    ("send_receive", "per_s", "send+receive/s"),
    ("group_send_100", "deliveries_per_s", "group_send 100: deliveries/s"),
    ("group_send_1000", "deliveries_per_s", "group_send 1000: deliveries/s"),
    ("membership", "group_add_us", "group_add us"),
    ("membership", "group_discard_us", "group_discard us"),
]


def _layers(redis: Child | None) -> tuple:
    chosen, notes = [], []
    for name, (_, needs_redis) in LAYERS.items():
        if needs_redis and redis is None:
            notes.append(f"{name}: skipped, no redis-server installed")
        elif name.startswith("hubbub") and needs_redis and not hubbub_redis_available():
            notes.append(f"{name}: skipped, hubbub.layers.redis is not importable yet")
        else:
            chosen.append(name)
    return chosen, notes


def run(plan: Plan, redis: Child | None) -> Section:
    chosen, notes = _layers(redis)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in chosen}
    redis_url = f"redis://127.0.0.1:{redis.port}/0" if redis is not None else ""
    with contextlib.ExitStack() as stack:
        cluster_urls = _cluster(stack, chosen, notes)
        for _ in range(plan.repeats):
            for name in chosen:
                job = {
                    "layer": name,
                    "redis_url": redis_url,
                    "cluster_urls": cluster_urls,
                    "prefix": "bench" + uuid.uuid4().hex[:10],
                    "seconds": plan.micro_seconds,
                    "timeout": 60 + 8 * plan.micro_seconds,
                }
                # The other core from Redis's: the layer and Redis each get a core of their own.
                runs[name].append(timed(name, lambda job=job: run_job("bench.micro", job, core=CLIENT_CORE)))
    section = summarise(runs, plan)
    section.notes[:0] = notes
    return section


def _cluster(stack: contextlib.ExitStack, chosen: list[str], notes: list[str]) -> list[str]:
    """Seed URLs of a private six-node cluster on the server core, if a chosen layer needs one."""
    cluster_layers = [name for name in chosen if LAYERS[name][1] == "cluster"]
    if not cluster_layers:
        return []
    from tests.redis_cluster import cluster_binaries, redis_cluster

    reason = cluster_binaries()
    try:
        if reason is not None:
            raise RuntimeError(reason)
        return stack.enter_context(redis_cluster(pin=lambda args: pinned(args, SERVER_CORE))).urls
    except Exception as exc:  # no cluster: its rows are skipped, the rest runs
        for name in cluster_layers:
            chosen.remove(name)
            notes.append(f"{name}: skipped, no Redis Cluster ({exc})")
        return []


def summarise(runs: dict[str, list[dict[str, Any]]], plan: Plan) -> Section:
    section = Section("3. layer micro-benchmarks (one process, wall-clock)")
    medians: dict[str, dict[str, float | None]] = {}
    for name, results in runs.items():
        for r in results:
            section.notes += [
                f"{name} {op}: {v['error']}" for op, v in r.items() if isinstance(v, dict) and "error" in v
            ]
            if "error" in r:
                section.notes.append(f"{name}: {r['error']}")
        medians[name] = {
            f"{op}.{field}": median([r.get(op, {}).get(field) for r in results]) for op, field, _ in COLUMNS
        }
    table = Table(f"median of {plan.repeats} run(s)", ["layer", *(title for _, _, title in COLUMNS)])
    table.rows = [[name, *(m[f"{op}.{field}"] for op, field, _ in COLUMNS)] for name, m in medians.items()]
    section.tables.append(table)
    ratios = Table(
        "hubbub / Channels, same layer kind (higher is better; for us columns lower is better)",
        ["layer kind", *(title for _, _, title in COLUMNS)],
    )
    for kind in ("inmemory", "redis", "pubsub"):
        hub, chan = medians.get(f"hubbub {kind}"), medians.get(f"channels {kind}")
        if hub and chan:
            ratios.rows.append([kind, *(times(ratio(hub[k], chan[k])) for k in hub)])
    section.tables.append(ratios)
    section.checks = _checks(medians)
    section.data = {"medians": medians, "runs": runs}
    return section


def _checks(medians: dict[str, dict[str, float | None]]) -> list[Check]:
    def versus(kind: str, key: str) -> float | None:
        hub, chan = medians.get(f"hubbub {kind}", {}), medians.get(f"channels {kind}", {})
        return ratio(hub.get(key), chan.get(key))

    cluster = medians.get("hubbub redis cluster", {})
    fan_out = "group_send_1000.deliveries_per_s"

    return [
        check(
            "in-memory send+receive, hubbub / Channels",
            versus("inmemory", "send_receive.per_s"),
            ">= 3",
            lambda v: v >= 3,
        ),
        check(
            "in-memory group_send to 100, deliveries hubbub / Channels",
            versus("inmemory", "group_send_100.deliveries_per_s"),
            ">= 20",
            lambda v: v >= 20,
        ),
        check(
            "in-memory group_send to 1000, deliveries hubbub / Channels",
            versus("inmemory", "group_send_1000.deliveries_per_s"),
            ">= 20",
            lambda v: v >= 20,
        ),
        check(
            "Redis send+receive, hubbub / channels_redis",
            versus("redis", "send_receive.per_s"),
            ">= 10",
            lambda v: v >= 10,
        ),
        check(
            "Redis group_send to 100, deliveries hubbub / channels_redis",
            versus("redis", "group_send_100.deliveries_per_s"),
            ">= 5",
            lambda v: v >= 5,
        ),
        check(
            "Redis group_add cost, hubbub / channels_redis",
            versus("redis", "membership.group_add_us"),
            "<= 0.2",
            lambda v: v <= 0.2,
        ),
        check(
            "Redis Cluster group_send to 1000, deliveries hubbub on the cluster / channels_redis on one Redis",
            ratio(cluster.get(fan_out), medians.get("channels redis", {}).get(fan_out)),
            ">= 5",
            lambda v: v >= 5,
        ),
        check(
            "Redis Cluster group_send to 1000, deliveries on the cluster / on one Redis (hubbub)",
            ratio(cluster.get(fan_out), medians.get("hubbub redis", {}).get(fan_out)),
            ">= 0.77 (1 / 1.3)",
            lambda v: v >= 1 / 1.3,
        ),
    ]

"""Scenario 2, broadcast: N clients in group ``bench``, a publisher posting to it.

Targets at N = 1,000 in one process: hubbub ≥ 10 × the deliveries/s of Channels'
best layer, and server CPU per delivery within 2 × the bare broadcast app's; at
N = 5,000 CPU per delivery within 1.2 × the N = 1,000 figure; nothing lost below
capacity (the fixed-rate phase runs at half the saturated rate). With two server
processes (full plan), hubbub's Redis layer also runs on a private six-node Redis
Cluster: server CPU per delivery within 1.3 × the same two processes on one Redis.
Issue 13 raises the first to ≥ 20 × Channels' best layer in the same run, for hubbub's
in-memory and its Redis layer each.
"""

from __future__ import annotations

import contextlib
import importlib.util
from typing import Any

from ..plan import Plan
from ..procs import SERVER_CORE, Child, pinned
from ..report import Check, Section, Table, check, pick_median_run, times
from ..runner import run_job, timed
from ..stats import median, ratio
from ..targets import BARE, BARE_GRANIAN, HUBBUB_GRANIAN, Target, installed, serve

LAYERS = ("inmemory", "redis", "pubsub")
#: Issue 13's bar at N = 1,000: deliveries/s of each of these over Channels' best layer.
ISSUE13_RATIO = 20
ISSUE13_TARGETS = ("hubbub inmemory", "hubbub redis")


def hubbub_redis_available() -> bool:
    """Whether ``hubbub.layers.redis`` exists yet (another engineer is writing it)."""
    try:
        return importlib.util.find_spec("hubbub.layers.redis") is not None
    except ImportError:
        return False


def targets(redis: Child | None, two_processes: bool) -> tuple[list[Target], list[str]]:
    """The targets this run can serve, and notes on the ones it has to skip.

    With ``two_processes``, hubbub's Redis layer also runs on two server processes
    (Channels' is not: its one-process figures already set the bar, and its set-up
    time at 5,000 clients would dominate the run). The bare app and hubbub's in-memory
    layer also run on Granian, when it is installed.
    """
    notes: list[str] = []
    chosen = [BARE]
    for app in ("hubbub", "channels"):
        for layer in LAYERS:
            if layer != "inmemory" and redis is None:
                notes.append(f"{app} {layer}: skipped, no redis-server installed")
                continue
            if app == "hubbub" and layer != "inmemory" and not hubbub_redis_available():
                notes.append(f"hubbub {layer}: skipped, hubbub.layers.redis is not importable yet")
                continue
            chosen.append(Target(app, layer=layer))
    for target in (BARE_GRANIAN, HUBBUB_GRANIAN):
        if installed(target):
            chosen.append(target)
        else:
            notes.append(f"{target.name}: skipped, {target.server} is not installed")
    if two_processes and redis is not None and hubbub_redis_available():
        chosen.append(Target("hubbub", layer="redis", processes=2))
        chosen.append(Target("hubbub", layer="redis-cluster", processes=2))
    return chosen, notes


def _cluster(stack: contextlib.ExitStack, chosen: list[Target], notes: list[str]) -> list[str]:
    """Seed URLs of a private six-node cluster on the server core, if a chosen target needs one."""
    wanted = [target for target in chosen if target.layer == "redis-cluster"]
    if not wanted:
        return []
    from tests.redis_cluster import cluster_binaries, redis_cluster

    try:
        reason = cluster_binaries()
        if reason is not None:
            raise RuntimeError(reason)
        return stack.enter_context(redis_cluster(pin=lambda args: pinned(args, SERVER_CORE))).urls
    except Exception as exc:  # no cluster: its target is skipped, the rest runs
        for target in wanted:
            chosen.remove(target)
            notes.append(f"{target.name}: skipped, no Redis Cluster ({exc})")
        return []


def _measure(target: Target, plan: Plan, redis: Child | None, cluster_urls: list[str]) -> dict[str, Any]:
    with serve(target, redis, cluster_urls) as deployment:
        job = {
            "kind": "broadcast",
            "ports": deployment.ports,
            "pids": deployment.pids,
            "redis_pid": deployment.redis_pid,
            "stages": list(plan.group_sizes),
            "sync_stages": list(plan.sync_view_sizes),
            "fixed_stages": list(plan.fixed_rate_sizes),
            "warmup": plan.broadcast_warmup,
            "sat_seconds": plan.saturated_seconds,
            "fixed_seconds": plan.fixed_seconds,
            "drain_seconds": plan.drain_seconds,
            "window": plan.in_flight,
            "fixed_fraction": plan.fixed_fraction,
            "timeout": 120 + 8 * len(plan.group_sizes) * (plan.saturated_seconds + plan.drain_seconds),
        }
        return run_job("bench.load", job)


def run(plan: Plan, redis: Child | None) -> Section:
    chosen, notes = targets(redis, plan.two_processes)
    with contextlib.ExitStack() as stack:
        cluster_urls = _cluster(stack, chosen, notes)
        runs: dict[str, list[dict[str, Any]]] = {t.name: [] for t in chosen}
        for _ in range(plan.repeats):
            for target in chosen:
                runs[target.name].append(
                    timed(target.name, lambda target=target: _measure(target, plan, redis, cluster_urls))
                )
    section = summarise(runs, plan)
    section.notes[:0] = notes
    return section


def _stage_medians(results: list[dict[str, Any]], members: int) -> dict[str, float | None]:
    stages = [s for r in results for s in r.get("stages", []) if s["members"] == members]
    sat = [s["saturated"] for s in stages]
    fixed = [s["fixed"] for s in stages if s.get("fixed")]
    sync = [s["saturated_sync_view"] for s in stages if s.get("saturated_sync_view")]
    return {
        "deliveries_per_s": median([s["deliveries_per_s"] for s in sat]),
        "cpu_us_per_delivery": median([s["cpu_us_per_delivery"] for s in sat]),
        "redis_cpu_us_per_delivery": median([s["redis_cpu_us_per_delivery"] for s in sat]),
        "sync_view_deliveries_per_s": median([s["deliveries_per_s"] for s in sync]),
        "lost": max((f["lost"] for f in fixed), default=None),
        "p50_ms": median([f["p50_ms"] for f in fixed]),
        "p99_ms": median([f["p99_ms"] for f in fixed]),
        "failed_connects": max((s["failed"] for s in stages), default=None),
    }


def summarise(runs: dict[str, list[dict[str, Any]]], plan: Plan) -> Section:
    section = Section("2. broadcast: N clients in one group, publisher through an async view")
    for name, results in runs.items():
        section.notes += [f"{name}: {r['error']}" for r in results if "error" in r]
    sizes = list(plan.group_sizes)
    medians = {name: {n: _stage_medians(results, n) for n in sizes} for name, results in runs.items()}

    def best_channels(n: int) -> float | None:
        rates = [
            m[n]["deliveries_per_s"]
            for name, m in medians.items()
            if name.startswith("channels") and m[n]["deliveries_per_s"] is not None
        ]
        return max(rates) if rates else None

    for key, title in (
        ("deliveries_per_s", "deliveries/s (saturated)"),
        ("cpu_us_per_delivery", "server CPU us per delivery (saturated)"),
    ):
        table = Table(f"{title}, median of {plan.repeats} run(s), by group size", ["target", *map(str, sizes)])
        table.rows = [[name, *(m[n][key] for n in sizes)] for name, m in medians.items()]
        section.tables.append(table)
    for n in (s for s in (1000, 5000) if s in sizes):
        table = Table(
            f"N = {n}: ratios within this run (Channels' best layer: {best_channels(n) or 0:,.0f}/s)",
            [
                "target",
                "deliveries/s",
                "x Channels best",
                "us/delivery",
                "x bare us",
                "redis us",
                "lost",
                "p50 ms",
                "p99 ms",
            ],
        )
        for name, m in medians.items():
            s = m[n]
            table.rows.append(
                [
                    name,
                    s["deliveries_per_s"],
                    times(ratio(s["deliveries_per_s"], best_channels(n))),
                    s["cpu_us_per_delivery"],
                    times(ratio(s["cpu_us_per_delivery"], medians[BARE.name][n]["cpu_us_per_delivery"])),
                    s["redis_cpu_us_per_delivery"] or None,
                    s["lost"],
                    s["p50_ms"],
                    s["p99_ms"],
                ]
            )
        section.tables.append(table)
    if plan.sync_view_sizes:
        n = plan.sync_view_sizes[0]
        table = Table(
            f"N = {n}: publishing through the sync view (async_to_sync) vs the async view",
            ["target", "async view deliveries/s", "sync view deliveries/s"],
        )
        table.rows = [
            [name, m[n]["deliveries_per_s"], m[n]["sync_view_deliveries_per_s"]] for name, m in medians.items()
        ]
        section.tables.append(table)
    section.checks = _checks(medians, best_channels, sizes)
    section.data = {
        "medians": {name: {str(n): v for n, v in m.items()} for name, m in medians.items()},
        "cdf_ms_n1000": {name: _fixed_cdf(results, 1000) for name, results in runs.items()},
        "runs": {name: [_without_cdfs(r) for r in results] for name, results in runs.items()},
    }
    return section


def _checks(
    medians: dict[str, dict[int, dict[str, float | None]]], best_channels: Any, sizes: list[int]
) -> list[Check]:
    hub = medians.get("hubbub inmemory", {})
    bare = medians[BARE.name]
    at = lambda m, n, key: m.get(n, {}).get(key)  # noqa: E731
    checks = [
        check(
            "N=1000 deliveries/s, hubbub in-memory / Channels' best layer",
            ratio(at(hub, 1000, "deliveries_per_s"), best_channels(1000) if 1000 in sizes else None),
            ">= 10",
            lambda v: v >= 10,
        ),
        *(
            check(
                f"N=1000 deliveries/s, {name} / Channels' best layer (issue 13)",
                ratio(
                    at(medians.get(name, {}), 1000, "deliveries_per_s"), best_channels(1000) if 1000 in sizes else None
                ),
                f">= {ISSUE13_RATIO}",
                lambda v: v >= ISSUE13_RATIO,
            )
            for name in ISSUE13_TARGETS
        ),
        check(
            "N=1000 CPU per delivery, hubbub in-memory / bare",
            ratio(at(hub, 1000, "cpu_us_per_delivery"), at(bare, 1000, "cpu_us_per_delivery")),
            "<= 2",
            lambda v: v <= 2,
        ),
    ]
    for name, m in medians.items():
        if name.startswith("hubbub"):
            checks.append(
                check(
                    f"CPU per delivery N=5000 / N=1000, {name}",
                    ratio(at(m, 5000, "cpu_us_per_delivery"), at(m, 1000, "cpu_us_per_delivery")),
                    "<= 1.2",
                    lambda v: v <= 1.2,
                )
            )
    cluster, single = medians.get("hubbub redis-cluster x2", {}), medians.get("hubbub redis x2", {})
    checks.append(
        check(
            "N=1000 CPU per delivery, hubbub x2 on a Redis Cluster / on one Redis",
            ratio(at(cluster, 1000, "cpu_us_per_delivery"), at(single, 1000, "cpu_us_per_delivery")),
            "<= 1.3",
            lambda v: v <= 1.3,
        )
    )
    for name, m in medians.items():
        if name.startswith("hubbub"):
            lost = [at(m, n, "lost") for n in sizes if at(m, n, "lost") is not None]
            checks.append(
                check(
                    f"lost deliveries at half capacity, {name}",
                    float(max(lost)) if lost else None,
                    "0",
                    lambda v: v == 0,
                )
            )
    return checks


def _fixed_cdf(results: list[dict[str, Any]], members: int) -> list[list[float]]:
    fixed = [s["fixed"] for r in results for s in r.get("stages", []) if s["members"] == members and s.get("fixed")]
    chosen = pick_median_run(fixed, "p50_ms")
    return chosen["cdf_ms"] if chosen else []


def _without_cdfs(result: dict[str, Any]) -> dict[str, Any]:
    if "stages" not in result:
        return result
    stages = []
    for s in result["stages"]:
        s = dict(s)
        if s.get("fixed"):
            s["fixed"] = {k: v for k, v in s["fixed"].items() if k != "cdf_ms"}
        stages.append(s)
    return {**result, "stages": stages}

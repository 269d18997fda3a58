"""Scenario 4, idle connections: thousands of WebSockets, each joining a group, then quiet.

Targets: server RSS per connection ≤ 0.7 × Channels on uvicorn's, and server CPU
per connection set-up flat as the count grows (10,000 within 1.2 × of 2,000); issue 13's
at most 20 KiB of RSS per idle connection on the default server (uvicorn).
"""

from __future__ import annotations

from typing import Any

from ..plan import Plan
from ..procs import Child
from ..report import Section, Table, check, times
from ..runner import run_job, timed
from ..stats import median, ratio
from ..targets import (
    BARE,
    BARE_GRANIAN,
    CHANNELS_DAPHNE,
    CHANNELS_UVICORN,
    HUBBUB,
    HUBBUB_GRANIAN,
    Target,
    installed,
    serve,
)

TARGETS = [BARE, HUBBUB, CHANNELS_UVICORN, CHANNELS_DAPHNE, BARE_GRANIAN, HUBBUB_GRANIAN]
#: Issue 13: RSS per idle connection on the default server, hubbub's runserver (uvicorn).
GOAL_KIB_PER_IDLE = 20.0
METRICS = ("rss_kib_per_connection", "cpu_ms_per_connect", "connects_per_s", "failed")


def _measure(target: Target, plan: Plan) -> dict[str, Any]:
    with serve(target) as deployment:
        job = {
            "kind": "idle",
            "ports": deployment.ports,
            "pids": deployment.pids,
            "stages": list(plan.idle_counts),
            "settle_seconds": plan.idle_settle_seconds,
            "timeout": 120 + max(plan.idle_counts) / 25,
        }
        return run_job("bench.load", job)


def run(plan: Plan, redis: Child | None) -> Section:
    chosen = [t for t in TARGETS if installed(t)]
    runs: dict[str, list[dict[str, Any]]] = {t.name: [] for t in chosen}
    for repeat in range(plan.repeats):
        for target in chosen:
            if target.app == "channels" and repeat >= plan.idle_reference_repeats:
                continue
            runs[target.name].append(timed(target.name, lambda target=target: _measure(target, plan)))
    section = summarise(runs, plan)
    section.notes[:0] = [f"{t.name}: skipped, {t.server} is not installed" for t in TARGETS if t not in chosen]
    return section


def summarise(runs: dict[str, list[dict[str, Any]]], plan: Plan) -> Section:
    section = Section("4. idle connections, each in group 'bench'")
    counts = list(plan.idle_counts)
    medians: dict[str, dict[int, dict[str, float | None]]] = {}
    for name, results in runs.items():
        section.notes += [f"{name}: {r['error']}" for r in results if "error" in r]
        stages = [s for r in results for s in r.get("stages", [])]
        medians[name] = {
            n: {key: median([s[key] for s in stages if s["planned"] == n]) for key in METRICS} for n in counts
        }
    table = Table(
        f"per connection, median of {plan.repeats} run(s), Channels {plan.idle_reference_repeats} "
        "(set-up CPU is for the batch up to the count)",
        ["target", "connections", "RSS KiB/conn", "x channels uvicorn", "set-up CPU ms", "connects/s", "failed"],
    )
    reference = medians[CHANNELS_UVICORN.name]
    for name, m in medians.items():
        for n in counts:
            s = m[n]
            table.rows.append(
                [
                    name,
                    n,
                    s["rss_kib_per_connection"],
                    times(ratio(s["rss_kib_per_connection"], reference[n]["rss_kib_per_connection"])),
                    s["cpu_ms_per_connect"],
                    s["connects_per_s"],
                    s["failed"],
                ]
            )
    section.tables.append(table)
    hub = medians[HUBBUB.name]
    low, high = counts[0], counts[-1]
    section.checks = [
        check(
            f"RSS per connection at {high}, hubbub / channels uvicorn",
            ratio(hub[high]["rss_kib_per_connection"], reference[high]["rss_kib_per_connection"]),
            "<= 0.7",
            lambda v: v <= 0.7,
        ),
        check(
            f"set-up CPU per connection, hubbub at {high} / at {low}",
            ratio(hub[high]["cpu_ms_per_connect"], hub[low]["cpu_ms_per_connect"]),
            "<= 1.2",
            lambda v: v <= 1.2,
        ),
        check(
            f"RSS KiB per idle connection at {high}, {HUBBUB.name} on uvicorn (the default server; issue 13)",
            hub[high]["rss_kib_per_connection"],
            f"<= {GOAL_KIB_PER_IDLE:.0f}",
            lambda v: v <= GOAL_KIB_PER_IDLE,
        ),
    ]
    section.data = {"medians": {name: {str(n): v for n, v in m.items()} for name, m in medians.items()}, "runs": runs}
    return section

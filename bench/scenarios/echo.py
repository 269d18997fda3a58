"""Scenario 1, echo: 50 clients ping-pong small text frames.

Targets: hubbub on uvicorn at ≥ 0.85 × the bare ASGI echo's messages/s, and its
p99 latency ≤ 1.5 × the bare echo's.
"""

from __future__ import annotations

from typing import Any

from ..plan import Plan
from ..procs import Child
from ..report import Section, Table, check, pick_median_run, times
from ..runner import run_job, timed
from ..stats import median, ratio
from ..targets import BARE, BARE_GRANIAN, CHANNELS_DAPHNE, CHANNELS_UVICORN, HUBBUB, HUBBUB_GRANIAN, Target, serve

TARGETS = [BARE, HUBBUB, CHANNELS_UVICORN, CHANNELS_DAPHNE, BARE_GRANIAN, HUBBUB_GRANIAN]


def _measure(target: Target, plan: Plan) -> dict[str, Any]:
    with serve(target) as deployment:
        job = {
            "kind": "echo",
            "ports": deployment.ports,
            "pids": deployment.pids,
            "clients": plan.echo_clients,
            "warmup": plan.echo_warmup,
            "seconds": plan.echo_seconds,
            "timeout": 60 + plan.echo_seconds,
        }
        return run_job("bench.load", job)


def run(plan: Plan, redis: Child | None) -> Section:
    runs: dict[str, list[dict[str, Any]]] = {t.name: [] for t in TARGETS}
    for _ in range(plan.repeats):  # round-robin: every target once per repeat
        for target in TARGETS:
            runs[target.name].append(timed(target.name, lambda target=target: _measure(target, plan)))
    return summarise(runs, plan)


def summarise(runs: dict[str, list[dict[str, Any]]], plan: Plan) -> Section:
    section = Section("1. echo: 50 clients ping-pong")
    medians: dict[str, dict[str, float | None]] = {}
    for name, results in runs.items():
        ok = [r for r in results if "error" not in r]
        section.notes += [f"{name}: {r['error']}" for r in results if "error" in r]
        medians[name] = {
            key: median([r[key] for r in ok])
            for key in ("msgs_per_s", "cpu_us_per_msg", "p50_ms", "p99_ms", "client_cpu_us_per_msg")
        }
    bare = medians[BARE.name]
    table = Table(
        f"msgs/s and latency, median of {plan.repeats} round-robin run(s); ratios against bare",
        ["target", "msgs/s", "x bare", "server us/msg", "p50 ms", "p99 ms", "p99 x bare", "client us/msg"],
    )
    for name, m in medians.items():
        table.rows.append(
            [
                name,
                m["msgs_per_s"],
                times(ratio(m["msgs_per_s"], bare["msgs_per_s"])),
                m["cpu_us_per_msg"],
                m["p50_ms"],
                m["p99_ms"],
                times(ratio(m["p99_ms"], bare["p99_ms"])),
                m["client_cpu_us_per_msg"],
            ]
        )
    section.tables.append(table)
    hub = medians[HUBBUB.name]
    section.checks = [
        check(
            "echo msgs/s, hubbub / bare", ratio(hub["msgs_per_s"], bare["msgs_per_s"]), ">= 0.85", lambda v: v >= 0.85
        ),
        check("echo p99, hubbub / bare", ratio(hub["p99_ms"], bare["p99_ms"]), "<= 1.5", lambda v: v <= 1.5),
    ]
    section.data = {
        "medians": medians,
        "cdf_ms": {name: (pick_median_run(rs, "msgs_per_s") or {}).get("cdf_ms", []) for name, rs in runs.items()},
        "runs": [{k: v for k, v in r.items() if k != "cdf_ms"} | {"target": n} for n, rs in runs.items() for r in rs],
    }
    return section

"""``python -m bench [--quick] [--only echo,broadcast,layers,idle,features,scale] [--profile]``.

Runs the scenarios (every target round-robin, repeated), prints each scenario's
table as it finishes and every target's verdict at the end, and writes
``bench/results/<date>.json`` (``<date>-<scenarios>.json`` for ``--only``) and the
plots in ``docs/img/`` (``--quick``: a ``-quick`` JSON and plots in a temporary
directory, so quick runs never replace the recorded ones).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

from . import plots
from .plan import FULL, QUICK, Plan
from .procs import ROOT, Child, raise_nofile_limit, redis_server
from .report import Section, round_floats
from .scenarios import broadcast, echo, features, idle, layers, scale

SCENARIOS: dict[str, Callable[[Plan, Child | None], Section]] = {
    "echo": echo.run,
    "broadcast": broadcast.run,
    "layers": layers.run,
    "idle": idle.run,
    "features": features.run,
    "scale": scale.run,
}
PACKAGES = (
    "hubbub",
    "channels",
    "channels-redis",
    "daphne",
    "uvicorn",
    "granian",
    "django",
    "uvloop",
    "picows",
    "redis",
)


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as cpuinfo:
        model = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "")
    versions = {}
    for package in PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[package] = metadata.version(package)
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "system": platform.platform(),
        "packages": versions,
        "commit": _commit(),
        "load_average_at_start": os.getloadavg(),
    }


def _commit() -> str:
    """The commit measured, with ``-dirty`` when hubbub's own files differ from it."""

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return ""

    commit = git("rev-parse", "--short", "HEAD")
    return commit + ("-dirty" if git("status", "--porcelain", "--", "hubbub") else "")


def main(argv: list | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one short repeat of everything (< 5 minutes)")
    parser.add_argument("--only", default=",".join(SCENARIOS), help="comma-separated scenarios to run")
    parser.add_argument("--profile", action="store_true", help="profile hubbub in each scenario with py-spy instead")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = set(chosen) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}; choose from {', '.join(SCENARIOS)}")
    raise_nofile_limit()
    if args.profile:
        from .profile import profile_all

        return profile_all(plan, chosen)
    return run_scenarios(plan, chosen)


def run_scenarios(plan: Plan, chosen: list) -> int:
    started = time.monotonic()
    results: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "quick": plan.quick,
        "machine": machine(),
    }
    sections = []
    day = datetime.date.today().isoformat()
    # A run of some scenarios only (--only) gets a file of its own: it must not replace the day's other runs.
    subset = "" if set(chosen) == set(SCENARIOS) else "-" + "-".join(chosen)
    out = ROOT / "bench" / "results" / f"{day}{subset}{'-quick' if plan.quick else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        redis = redis_server()
        if redis is None:
            print("note: redis-server is not installed; the Redis targets are skipped", flush=True)
        else:
            stack.enter_context(redis)
        for name in chosen:
            began = time.monotonic()
            section = SCENARIOS[name](plan, redis)
            section.notes.append(f"took {time.monotonic() - began:.0f} s")
            print("\n" + section.render(), flush=True)
            sections.append(section)
            results[name] = section.to_json()
            out.write_text(json.dumps(round_floats(results), indent=1) + "\n")  # kept if a later scenario fails
    results["seconds"] = round(time.monotonic() - started)
    results["machine"]["load_average_at_end"] = os.getloadavg()
    out.write_text(json.dumps(round_floats(results), indent=1) + "\n")
    images = Path(tempfile.mkdtemp(prefix="hubbub-bench-plots-")) if plan.quick else ROOT / "docs" / "img"
    written = plots.write_plots(results, images)
    print("\n== every target ==")
    for section in sections:
        for c in section.checks:
            print(c.line())
    print(f"\nresults: {out.relative_to(ROOT)}; plots: {', '.join(str(p) for p in written) or 'none'}")
    print(f"total {results['seconds']} s on {results['machine']['cpu']} ({results['machine']['cores']} cores)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Running load jobs in their own pinned process and collecting their JSON results."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from .procs import CLIENT_CORE, ROOT, pinned

#: Seconds a job may take beyond its own bound before it is killed.
GRACE_SECONDS = 30


def run_job(module: str, job: dict[str, Any], core: int = CLIENT_CORE, wrap: list[str] | None = None) -> dict[str, Any]:
    """Run ``python -m <module> '<job>'`` pinned to ``core``; its last stdout line, parsed.

    ``job['timeout']`` bounds the job inside the process; the process itself is
    killed if it outlives that by ``GRACE_SECONDS``. ``wrap`` prefixes the command
    (the profiler uses it).
    """
    args = pinned([*(wrap or []), sys.executable, "-m", module, json.dumps(job)], core)
    try:
        done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=job["timeout"] + GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        return {"error": f"{module} {job.get('kind', '')} killed after {job['timeout'] + GRACE_SECONDS} s"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]  # not a wrapper's chatter
    if done.returncode != 0 or not lines:
        return {"error": f"{module} exited with {done.returncode}: {done.stderr.strip()[-1500:]}"}
    return json.loads(lines[-1])


def timed(name: str, measure: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run one measurement, printing a progress line (and its error, if any) when it ends."""
    started = time.monotonic()
    result = measure()
    error = result.get("error")
    print(
        f"  {name}: {time.monotonic() - started:.0f} s" + (f" ({error.splitlines()[-1][:160]})" if error else ""),
        flush=True,
    )
    return result

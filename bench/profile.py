"""``python -m bench --profile``: where hubbub's server time goes, sampled with py-spy.

Each scenario's hubbub target runs once with the benchmark's load; once the load
is under way, ``py-spy record`` attaches to the server for a few seconds (so
start-up is not in the samples). The micro-benchmarks run under py-spy from the
start, and stacks inside imports are left out. The raw stacks go to a temporary
directory; a summary of the busiest functions (own time and time including
callees, as shares of the sampled busy time) goes to
``bench/results/profiles/<scenario>.txt``, small enough to keep in git.
"""

from __future__ import annotations

import collections
import contextlib
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .plan import Plan
from .procs import CLIENT_CORE, ROOT, Child, pinned, redis_server
from .runner import run_job
from .scenarios.broadcast import hubbub_redis_available
from .targets import HUBBUB, Target, serve

SAMPLES_PER_SECOND = 500
TOP = 30
#: Frames that mark a stack as module import work, not serving.
_IMPORTING = ("_find_and_load", "Config.load_app")
_FRAME = re.compile(r"^(?P<name>.*?) \((?P<file>[^:()]*)(?::\d+)?\)$")


def _short(frame: str) -> str:
    """``'send (/x/site-packages/uvicorn/a.py:12)'`` → ``'send (uvicorn/a.py)'``: functions, not lines."""
    match = _FRAME.match(frame)
    if not match:
        return frame
    path = match["file"]
    for marker in ("site-packages/", str(ROOT) + "/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{match['name']} ({path})"


def summarise(raw: Path, title: str) -> str:
    """The top functions by own and by inclusive samples, from py-spy's raw (collapsed) output."""
    own: Counter[str] = collections.Counter()
    inclusive: Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        if any(marker in stack for marker in _IMPORTING):
            continue
        frames = [_short(f) for f in stack.split(";")]
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    lines = [
        f"# {title}",
        f"{total} samples at {SAMPLES_PER_SECOND}/s of time holding the GIL. "
        "'Runner.run' own time is uvloop's C code (socket I/O, scheduling) under asyncio.run.",
        "",
    ]
    for heading, counter in (("own time", own), ("including callees", inclusive)):
        lines.append(f"## top {TOP} by {heading}")
        lines += [f"{100 * n / max(total, 1):6.1f}%  {name}" for name, n in counter.most_common(TOP)]
        lines.append("")
    return "\n".join(lines)


def _py_spy(out: Path) -> list[str]:
    binary = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    # --gil: only samples of a thread holding the GIL, so idle pool threads do not dilute the
    # event loop's share; --nonblocking: the server is not paused to be sampled.
    return [binary, "record", "-r", str(SAMPLES_PER_SECOND), "--gil", "--nonblocking", "-f", "raw", "-o", str(out)]


def _profile_server(target: Target, job: dict, raw: Path, redis: Child | None, after: float, seconds: float) -> dict:
    """Run ``job`` against ``target``; sample the server from ``after`` seconds in, for ``seconds``."""
    with serve(target, redis) as deployment, ThreadPoolExecutor(1) as pool:
        load = pool.submit(
            run_job,
            "bench.load",
            {**job, "ports": deployment.ports, "pids": deployment.pids, "redis_pid": deployment.redis_pid},
        )
        time.sleep(after)
        spy = [*_py_spy(raw), "--pid", str(deployment.pids[0]), "-d", str(seconds)]
        subprocess.run(pinned(spy, CLIENT_CORE), capture_output=True, timeout=seconds + 60)
        return load.result()


def _jobs(plan: Plan, redis: Child | None) -> dict[str, Callable[[Path], tuple[str, dict]]]:
    def echo(raw: Path) -> tuple[str, dict]:
        job = {"kind": "echo", "clients": plan.echo_clients, "warmup": 0.5, "seconds": 8, "timeout": 60}
        return "hubbub on uvicorn, echo, 50 clients", _profile_server(HUBBUB, job, raw, redis, 2, 5)

    def broadcast_job(layer: str) -> Callable[[Path], tuple[str, dict]]:
        def profile(raw: Path) -> tuple[str, dict]:
            job = {
                "kind": "broadcast",
                "stages": [1000],
                "sync_stages": [],
                "fixed_stages": [],
                "warmup": 0.5,
                "sat_seconds": 14,
                "fixed_seconds": 0,
                "drain_seconds": 5,
                "window": plan.in_flight,
                "fixed_fraction": 0.5,
                "timeout": 120,
            }
            return (
                f"hubbub on uvicorn, broadcast to 1,000 clients, {layer} layer, saturated",
                _profile_server(Target("hubbub", layer=layer), job, raw, redis, 8, 6),
            )

        return profile

    def idle(raw: Path) -> tuple[str, dict]:
        job = {"kind": "idle", "stages": [5000], "settle_seconds": 1.0, "timeout": 120}
        return (
            "hubbub on uvicorn, 5,000 connections joining a group",
            _profile_server(HUBBUB, job, raw, redis, 2.5, 6),
        )

    def layer_job(layer: str) -> Callable[[Path], tuple[str, dict]]:
        def profile(raw: Path) -> tuple[str, dict]:
            job = {
                "layer": f"hubbub {layer}",
                "prefix": "bench" + uuid.uuid4().hex[:10],
                "seconds": 2,
                "redis_url": f"redis://127.0.0.1:{redis.port}/0" if redis is not None else "",
                "timeout": 90,
            }
            return (
                f"hubbub {layer} layer micro-benchmarks",
                run_job("bench.micro", job, CLIENT_CORE, wrap=[*_py_spy(raw), "--"]),
            )

        return profile

    jobs = {"echo": echo, "broadcast": broadcast_job("inmemory"), "layers": layer_job("inmemory"), "idle": idle}
    if redis is not None and hubbub_redis_available():
        jobs["broadcast-redis"] = broadcast_job("redis")
        jobs["layers-redis"] = layer_job("redis")
    return jobs


def profile_all(plan: Plan, chosen: list[str]) -> int:
    """Profile each chosen scenario; print and save the summaries."""
    out_dir = ROOT / "bench" / "results" / "profiles"
    out_dir.mkdir(parents=True, exist_ok=True)
    raw_dir = Path(tempfile.mkdtemp(prefix="hubbub-bench-profiles-"))
    redis = redis_server()
    with redis if redis is not None else contextlib.nullcontext():
        for name, profile in _jobs(plan, redis).items():
            if name.split("-")[0] not in chosen:
                continue
            raw = raw_dir / f"{name}.txt"
            title, result = profile(raw)
            if not raw.exists():
                print(f"{name}: py-spy wrote nothing ({result.get('error', 'no error reported')})")
                continue
            summary = summarise(raw, title)
            (out_dir / f"{name}.txt").write_text(summary + "\n")
            print(summary, f"(raw stacks: {raw})", sep="\n", flush=True)
    return 0

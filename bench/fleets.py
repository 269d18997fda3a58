"""Driving the scale scenario: fleets of listening sockets, a publisher, and the measurements.

Theory of operation. ``drive`` runs in the bench's own process against a running
deployment. It starts ``ceil(N / PER_FLEET)`` load-generator processes
(``bench.load.fleet``) pinned to the client core, each given its share of the N
sockets, a port offset (so the sockets spread evenly over the server processes) and
source addresses of its own under 127.<run>.<fleet>.x (a fresh ``<run>`` each time,
so no run meets the last one's closed connections). Once every fleet reports its
sockets open, it reads the servers' RSS, then publishes broadcast after broadcast,
one at a time: the publish time is taken just before the first request is written,
and a broadcast's latency is the latest receipt over all fleets minus that time
(one monotonic clock for every process). The publisher posts once to every server
process (in-memory layer, bare app: each process fans out to its own members) or once
to the first (Redis: the layer fans out to every process). The first ``WARM_UP``
broadcasts are not measured; around the measured ones it reads the servers' CPU time
(``Meter``), their GC pauses (``gcstats``; also since the servers started, connecting
included) and each fleet's own CPU per frame. A broadcast that has not reached everyone
within ``broadcast_timeout`` is recorded as incomplete with what did arrive; two in a row
end the broadcasting early.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from . import gcstats
from .load.http import Publisher
from .load.meter import Meter
from .procs import CLIENT_CORE, ROOT, pinned, raise_nofile_limit
from .stats import percentile
from .targets import Deployment

#: Sockets per load-generator process (the hard open-file limit here is 20,000 per process).
PER_FLEET = 15000
#: Broadcasts sent and not measured before the measured ones (first-time costs, warm caches).
WARM_UP = 2
#: Handshakes in flight per fleet.
CONCURRENCY = 64
#: Seconds between the end of one broadcast and the next publish.
GAP_SECONDS = 0.2
#: Seconds after the last socket opened before memory is read.
SETTLE_SECONDS = 2.0
#: Each payload: its sequence number, a space, and padding to a chat-message-like size.
_PAD = b"x" * 60


class FleetError(RuntimeError):
    """A load generator failed or did not answer in time."""


class _Fleet:
    """One load-generator process and its stream of events."""

    def __init__(self, process: asyncio.subprocess.Process, log: Path) -> None:
        self.process = process
        self.log = log

    async def event(self, kind: str, deadline: float, seq: int | None = None) -> dict[str, Any]:
        """The next event of ``kind`` (for ``seq``, if given), skipping stale ``done`` events."""
        assert self.process.stdout is not None
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise asyncio.TimeoutError
            line = await asyncio.wait_for(self.process.stdout.readline(), remaining)
            if not line:
                raise FleetError(f"a load generator ended: {self.log.read_text(errors='replace')[-1500:]}")
            event = json.loads(line)
            if event["event"] == kind and (seq is None or event.get("seq") == seq):
                return event

    def command(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line.encode() + b"\n")


def fleet_sizes(members: int) -> list[int]:
    """``members`` split over as few fleets as hold them, as evenly as possible."""
    count = max(1, math.ceil(members / PER_FLEET))
    return [members // count + (1 if i < members % count else 0) for i in range(count)]


async def _start_fleets(deployment: Deployment, members: int, timeout: float) -> list[_Fleet]:
    run = random.randrange(10, 250)  # noqa: S311 - an address block, not a secret
    fleets = []
    offset = 0
    for index, clients in enumerate(fleet_sizes(members)):
        job = {
            "ports": deployment.ports,
            "path": "ws/group",
            "clients": clients,
            "offset": offset,
            "sources": [f"127.{run}.{index}.{k}" for k in range(2, 6)],
            "concurrency": CONCURRENCY,
            "max_seq": 1000,
            "timeout": timeout,
        }
        offset += clients
        log = Path(tempfile.mkstemp(prefix="hubbub-bench-fleet-", suffix=".log")[1])
        with log.open("wb") as stderr:
            process = await asyncio.create_subprocess_exec(
                *pinned([sys.executable, "-m", "bench.load.fleet", json.dumps(job)], CLIENT_CORE),
                cwd=ROOT,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
                start_new_session=True,
                preexec_fn=raise_nofile_limit,
            )
        fleets.append(_Fleet(process, log))
    return fleets


async def _stop_fleets(fleets: list[_Fleet]) -> None:
    """Close each fleet's input (it resets its sockets and exits); kill, by PID, any that lingers."""
    for fleet in fleets:
        if fleet.process.stdin is not None:
            fleet.process.stdin.close()
    for fleet in fleets:
        try:
            await asyncio.wait_for(fleet.process.wait(), 30)
        except asyncio.TimeoutError:
            fleet.process.kill()
            await fleet.process.wait()
        fleet.log.unlink(missing_ok=True)


class _Publisher:
    """Posts one broadcast to each server process (``per_process``) or to the first one only."""

    def __init__(self, ports: list[int], per_process: bool) -> None:
        self.publishers = [Publisher(port) for port in (ports if per_process else ports[:1])]
        self.opened = False

    async def open(self) -> None:
        for publisher in self.publishers:
            await publisher.open()
        self.opened = True

    async def publish(self, seq: int) -> int:
        """Post broadcast ``seq``; the monotonic time (ns) just before the first request was written."""
        body = b"%d %s" % (seq, _PAD)
        sent = time.monotonic_ns()
        await asyncio.gather(*(publisher.post(body) for publisher in self.publishers))
        return sent

    def close(self) -> None:
        if self.opened:
            for publisher in self.publishers:
                publisher.close()


async def _broadcast(
    fleets: list[_Fleet], publisher: _Publisher, seq: int, timeout: float
) -> tuple[float | None, int | None]:
    """One broadcast: (latency in ms to the last receipt, or None; receipts if it did not complete)."""
    sent = await publisher.publish(seq)
    deadline = time.monotonic() + timeout
    last = 0
    try:
        for fleet in fleets:
            last = max(last, (await fleet.event("done", deadline, seq))["last_ns"])
    except asyncio.TimeoutError:
        receipts = 0
        for fleet in fleets:
            fleet.command(f"status {seq}")
            receipts += (await fleet.event("status", time.monotonic() + 30, seq))["receipts"]
        return None, receipts
    return (last - sent) / 1e6, None


async def drive(deployment: Deployment, members: int, broadcasts: int, per_process: bool, budget: float) -> dict:
    """Connect ``members`` sockets, send ``WARM_UP + broadcasts`` broadcasts, and measure; within ``budget`` s."""
    began = time.monotonic()
    meter = Meter(deployment.pids, deployment.redis_pid)
    empty = meter.read()
    fleets = await _start_fleets(deployment, members, budget)
    publisher = _Publisher(deployment.ports, per_process)
    result: dict[str, Any] = {"fleets": len(fleets), "processes": len(deployment.ports)}
    try:
        connect_deadline = began + budget * 0.6
        try:
            ready = [await fleet.event("ready", connect_deadline) for fleet in fleets]
        except asyncio.TimeoutError:
            raise FleetError(f"the sockets were not all open after {connect_deadline - began:.0f} s") from None
        result["members"] = sum(r["clients"] for r in ready)
        result["failed_connects"] = sum(r["failed"] for r in ready)
        result["connect_seconds"] = time.monotonic() - began
        if not result["members"]:
            raise FleetError(f"no socket connected ({result['failed_connects']} attempts failed)")
        await asyncio.sleep(SETTLE_SECONDS)
        full = meter.read()
        result["rss_kib_per_connection"] = (full.rss - empty.rss) / 1024 / result["members"]
        await publisher.open()
        timeout = 10 + members / 2000  # seconds a broadcast may take (50,000: 35 s)
        measured, incomplete = await _broadcasts(
            fleets, publisher, (result["members"], broadcasts, timeout, began + budget - 30), deployment.ports, meter
        )
        result.update(measured)
        result["incomplete"] = incomplete
        last = result["published"] - 1
        totals = {"lost": 0, "closed": 0, "frames": 0, "cpu_seconds": 0.0, "system_seconds": 0.0}
        for fleet in fleets:
            fleet.command(f"finish {last}")
            done = await fleet.event("result", time.monotonic() + 60)
            done["system_seconds"] = done["cpu_seconds"] * (done["system_share"] or 0.0)
            for key in totals:
                totals[key] += done[key]
        result["lost"] = totals["lost"]
        result["closed_by_server"] = totals["closed"]
        frames, cpu = totals["frames"], totals["cpu_seconds"]
        result["client_cpu_us_per_frame"] = cpu * 1e6 / frames if frames else None
        result["client_system_share"] = totals["system_seconds"] / cpu if cpu else None
        result["client_core_busy"] = cpu / result["active_seconds"]
    finally:
        publisher.close()
        await _stop_fleets(fleets)
    result["seconds"] = time.monotonic() - began
    return result


async def _broadcasts(
    fleets: list[_Fleet],
    publisher: _Publisher,
    plan: tuple[int, int, float, float],
    ports: list[int],
    meter: Meter,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The warm-up and measured broadcasts; latencies, server CPU, GC pauses, and the incomplete ones.

    ``plan``: (members, broadcasts, seconds one broadcast may take, monotonic time to stop by).
    """
    members, broadcasts, timeout, stop_by = plan
    incomplete: list[dict[str, Any]] = []
    for seq in range(WARM_UP):
        _, receipts = await _broadcast(fleets, publisher, seq, timeout)
        if receipts is not None:
            incomplete.append({"seq": seq, "receipts": receipts, "warm_up": True})
        await asyncio.sleep(GAP_SECONDS)
    loop = asyncio.get_running_loop()
    gc_before = await loop.run_in_executor(None, lambda: [gcstats.scrape(port) for port in ports])
    for fleet in fleets:
        fleet.command("start")
    latencies: list[float] = []
    deliveries = misses = 0
    seq = WARM_UP - 1
    before, started = meter.read(), time.monotonic()
    for seq in range(WARM_UP, WARM_UP + broadcasts):
        if time.monotonic() + timeout > stop_by:
            break
        latency, receipts = await _broadcast(fleets, publisher, seq, timeout)
        if latency is not None:
            latencies.append(latency)
            deliveries += members
            misses = 0
        else:
            incomplete.append({"seq": seq, "receipts": receipts})
            deliveries += receipts or 0
            misses += 1
            if misses >= 2:
                break
        await asyncio.sleep(GAP_SECONDS)
    after, elapsed = meter.read(), time.monotonic() - started
    server_cpu = after.cpu - before.cpu + after.redis_cpu - before.redis_cpu
    active = max(elapsed - (seq + 1 - WARM_UP) * GAP_SECONDS, 1e-3)  # the gaps between broadcasts left out
    gc_after = await loop.run_in_executor(None, lambda: [gcstats.scrape(port) for port in ports])
    ordered = sorted(latencies)
    return {
        "published": seq + 1,
        "broadcasts": seq + 1 - WARM_UP,
        "latencies_ms": latencies,
        "p50_ms": percentile(ordered, 0.5) if ordered else None,
        "p99_ms": percentile(ordered, 0.99) if ordered else None,
        "max_ms": ordered[-1] if ordered else None,
        "window_seconds": elapsed,
        "active_seconds": active,
        "server_core_busy": server_cpu / active,
        "deliveries": deliveries,
        "server_cpu_us_per_delivery": (after.cpu - before.cpu) * 1e6 / deliveries if deliveries else None,
        "redis_cpu_us_per_delivery": (after.redis_cpu - before.redis_cpu) * 1e6 / deliveries if deliveries else None,
        "gc": gcstats.window(gc_before, gc_after),
        "gc_since_start": gcstats.since_start(gc_after),
    }, incomplete

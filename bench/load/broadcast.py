"""Broadcast job: N clients in group ``bench``; a publisher posts to the group.

The clients and the publisher share this process, so each delivery's latency is
measured on one clock (publish request written → frame received). Group size
grows in stages; at each stage the job measures:

- ``saturated``: the publisher keeps ``window`` messages in flight (the next is
  posted when the oldest has reached every member), so the server never idles and
  no channel overflows; deliveries/s and server CPU per delivery over a fixed time.
  Posts do not wait for each other: each goes out on a free one of ``window`` kept-alive
  connections. (A layer whose ``group_send`` returns only once every local member has its
  frame, the in-memory one, answers a post after its whole fan-out: posting one at a time
  would leave the server idle between fan-outs, and measure the publisher's round trip.)
- ``fixed rate`` (some stages): a fraction of the saturated rate, open loop, then a
  bounded drain; gives the latency distribution and the count of lost deliveries.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from picows import WSFrame, WSListener, WSMsgType, WSTransport

from ..stats import latency_summary
from .http import Publisher
from .meter import Meter
from .ws import connect_many

_PAD = b"." * 48
#: Seconds without a single delivery, messages in flight, after which a target is
#: declared stalled and the job ends with what it measured so far. Channels' in-memory
#: layer spends about 13 s in one group_send to 5,000 members, so this is generous.
STALL_SECONDS = 30.0
#: A saturated measurement lasts ``sat_seconds``, longer (up to this) until it has seen
#: at least one delivery per member: slow targets are measured, not recorded as zero.
MAX_WINDOW_SECONDS = 30.0


class Stalled(Exception):
    """The server stopped delivering (or never started)."""


class Tally:
    """Counts deliveries per message, in the measurement window, and their latencies."""

    def __init__(self) -> None:
        self.members = 0
        self.counts: dict[int, int] = {}
        self.phase_first = 0
        self.completed = 0
        self.in_window = 0
        self.measuring = False
        self.latencies: list[int] | None = None
        self.progress = asyncio.Event()
        self.last_delivery = time.monotonic()

    def start_phase(self, first_seq: int, record_latency: bool) -> None:
        self.phase_first, self.completed, self.in_window = first_seq, 0, 0
        self.latencies = [] if record_latency else None

    def delivered(self, seq: int, sent_ns: int) -> None:
        self.last_delivery = time.monotonic()
        count = self.counts[seq] = self.counts.get(seq, 0) + 1
        if self.measuring:
            self.in_window += 1
        if self.latencies is not None:
            self.latencies.append(time.perf_counter_ns() - sent_ns)
        if count == self.members and seq >= self.phase_first:
            self.completed += 1
            self.progress.set()


class _Member(WSListener):
    def __init__(self, tally: Tally):
        super().__init__()
        self.tally = tally

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type is WSMsgType.TEXT:
            seq, sent, _ = frame.get_payload_as_bytes().split(b" ", 2)
            self.tally.delivered(int(seq), int(sent))


class _Broadcast:
    def __init__(self, job: dict[str, Any]):
        self.job = job
        self.tally = Tally()
        self.meter = Meter(job["pids"], job.get("redis_pid"))
        self.transports: list[WSTransport] = []
        self.failed = 0
        self.seq = 0
        #: Kept-alive publishing connections not carrying a post now (``window`` of them, once opened).
        self.publishers: asyncio.Queue[Publisher] = asyncio.Queue()
        self.opened: list[Publisher] = []
        self.posting: set[asyncio.Task[None]] = set()
        self.error: BaseException | None = None
        self._post_bound = STALL_SECONDS * max(1, job["window"])

    async def open_publishers(self) -> None:
        for _ in range(max(1, self.job["window"])):
            publisher = await Publisher(self.job["ports"][0]).open()
            self.opened.append(publisher)
            self.publishers.put_nowait(publisher)

    def close_publishers(self) -> None:
        for task in self.posting:
            task.cancel()
        for publisher in self.opened:
            publisher.close()

    async def grow_to(self, members: int) -> None:
        more, failed = await connect_many(
            self.job["ports"],
            "ws/group",
            members - len(self.transports),
            lambda: _Member(self.tally),
            start=len(self.transports),
        )
        self.transports += more
        self.failed += failed
        self.tally.members = len(self.transports)
        if not self.transports:
            raise Stalled(f"no client could connect ({self.failed} attempts failed)")

    def _post(self, kind: str) -> None:
        """Post the next message on a free connection, without waiting for the answer."""
        if self.error is not None:
            raise self.error
        body = b"%d %d %s" % (self.seq, time.perf_counter_ns(), _PAD)
        self.seq += 1
        task = asyncio.ensure_future(self._send(body, kind))
        self.posting.add(task)
        task.add_done_callback(self._posted)

    async def _send(self, body: bytes, kind: str) -> None:
        publisher = await self.publishers.get()
        try:
            # A post may wait behind the others in flight (a layer that fans out in the request
            # answers them one after another), so its bound is one stall per post in flight.
            await asyncio.wait_for(publisher.post(body, kind), self._post_bound)
        except asyncio.TimeoutError:
            raise Stalled(f"a publish request took over {self._post_bound:.0f} s") from None
        finally:
            self.publishers.put_nowait(publisher)

    def _posted(self, task: asyncio.Task[None]) -> None:
        self.posting.discard(task)
        if not task.cancelled() and task.exception() is not None and self.error is None:
            self.error = task.exception()
            self.tally.progress.set()  # wake the loop waiting on deliveries: it raises the error

    async def _posts_answered(self) -> None:
        if self.posting:
            await asyncio.wait(set(self.posting), timeout=self._post_bound)
        if self.error is not None:
            raise self.error

    async def _drain(self, published: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.tally.completed < published and time.monotonic() < deadline:
            self.tally.progress.clear()
            try:
                await asyncio.wait_for(self.tally.progress.wait(), deadline - time.monotonic())
            except asyncio.TimeoutError:
                break
        return self.tally.completed >= published

    async def saturated(self, kind: str) -> dict[str, Any]:
        """Deliveries/s and CPU per delivery with ``window`` messages kept in flight."""
        job, tally = self.job, self.tally
        tally.start_phase(self.seq, record_latency=False)
        first = self.seq
        loop = asyncio.get_running_loop()
        warm_until = loop.time() + job["warmup"]
        stop_at = warm_until + job["sat_seconds"]
        give_up_at = warm_until + MAX_WINDOW_SECONDS
        before = None
        started = 0.0
        tally.last_delivery = time.monotonic()
        while loop.time() < stop_at or (tally.in_window < tally.members and loop.time() < give_up_at):
            if before is None and loop.time() >= warm_until:
                before, started, tally.measuring = self.meter.read(), time.perf_counter(), True
            if time.monotonic() - tally.last_delivery > STALL_SECONDS:
                raise Stalled(f"no delivery for {STALL_SECONDS:.0f} s with {self.seq - first} message(s) posted")
            if self.error is not None:
                raise self.error
            if self.seq - first - tally.completed >= job["window"]:
                tally.progress.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(tally.progress.wait(), 0.5)
                continue
            self._post(kind)
        if before is None:  # never got past the warm-up: measure nothing rather than lie
            before, started, tally.measuring = self.meter.read(), time.perf_counter(), True
        tally.measuring = False
        after, elapsed = self.meter.read(), time.perf_counter() - started
        delivered = max(tally.in_window, 1)
        await self._posts_answered()
        drained = await self._drain(self.seq - first, job["drain_seconds"])
        return {
            "deliveries_per_s": tally.in_window / elapsed,
            "cpu_us_per_delivery": (after.cpu - before.cpu) * 1e6 / delivered,
            "redis_cpu_us_per_delivery": (after.redis_cpu - before.redis_cpu) * 1e6 / delivered,
            "drained": drained,
        }

    async def fixed_rate(self, deliveries_per_s: float) -> dict[str, Any] | None:
        """Publish at ``fixed_fraction`` of the saturated rate; latencies and lost deliveries.

        At least two messages; ``None`` when they would not drain within the time bound.
        """
        job, tally = self.job, self.tally
        members = tally.members
        rate = job["fixed_fraction"] * deliveries_per_s / members  # messages per second
        count = max(2, int(rate * job["fixed_seconds"]))
        if count * members / max(deliveries_per_s, 1e-9) > job["fixed_seconds"] + job["drain_seconds"]:
            return None
        tally.start_phase(self.seq, record_latency=True)
        first = self.seq
        loop = asyncio.get_running_loop()
        start = loop.time()
        for i in range(count):
            delay = start + i / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            self._post("async")
            await asyncio.sleep(0)  # the post goes out now, not after the loop
        await self._posts_answered()
        await self._drain(count, job["drain_seconds"])
        received = sum(tally.counts.get(seq, 0) for seq in range(first, first + count))
        summary = latency_summary(tally.latencies or [])
        tally.latencies = None
        return {"messages": count, "rate_per_s": rate, "lost": count * members - received, **summary}


async def run(job: dict[str, Any]) -> dict[str, Any]:
    """Every stage of ``job['stages']`` (group sizes), in increasing order."""
    bench = _Broadcast(job)
    await bench.open_publishers()
    stages = []
    try:
        for members in job["stages"]:
            began = time.monotonic()
            await bench.grow_to(members)
            stage: dict[str, Any] = {
                "members": bench.tally.members,
                "failed": bench.failed,
                "connect_seconds": time.monotonic() - began,
            }
            stage["saturated"] = await bench.saturated("async")
            if members in job["sync_stages"]:
                stage["saturated_sync_view"] = await bench.saturated("sync")
            if members in job["fixed_stages"]:
                stage["fixed"] = await bench.fixed_rate(stage["saturated"]["deliveries_per_s"])
            stage["seconds"] = time.monotonic() - began
            stages.append(stage)
    finally:
        bench.close_publishers()
    return {"stages": stages}

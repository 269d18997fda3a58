"""Echo job: clients ping-pong one small text frame each, as fast as the server answers."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from picows import WSFrame, WSListener, WSMsgType, WSTransport

from ..stats import latency_summary
from .meter import Meter, own_cpu
from .ws import connect_many

PAYLOAD = b"x" * 64


class _Window:
    """Shared by all clients: whether to keep going, and what the measurement window saw."""

    def __init__(self) -> None:
        self.running = True
        self.measuring = False
        self.count = 0
        self.latencies: list[int] = []


class _PingPong(WSListener):
    """Sends the next frame as soon as the previous one comes back."""

    def __init__(self, window: _Window):
        super().__init__()
        self.window = window
        self.sent_at = 0

    def ping(self, transport: WSTransport) -> None:
        self.sent_at = time.perf_counter_ns()
        transport.send(WSMsgType.TEXT, PAYLOAD)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type is not WSMsgType.TEXT:
            return
        window = self.window
        if window.measuring:
            window.count += 1
            window.latencies.append(time.perf_counter_ns() - self.sent_at)
        if window.running:
            self.ping(transport)


async def run(job: dict[str, Any]) -> dict[str, Any]:
    """Warm up, then count round trips and read server CPU over ``job['seconds']``."""
    window = _Window()
    listeners: list[_PingPong] = []

    def factory() -> _PingPong:
        listeners.append(_PingPong(window))
        return listeners[-1]

    transports, failed = await connect_many(job["ports"], "ws/echo", job["clients"], factory)
    for listener, transport in zip(listeners, transports, strict=False):
        listener.ping(transport)
    await asyncio.sleep(job["warmup"])
    meter = Meter(job["pids"])
    before, client_before = meter.read(), own_cpu()
    started = time.perf_counter()
    window.measuring = True
    await asyncio.sleep(job["seconds"])
    window.measuring = False
    elapsed = time.perf_counter() - started
    after, client_after = meter.read(), own_cpu()
    window.running = False
    count = max(window.count, 1)
    return {
        "clients": len(transports),
        "failed": failed,
        "msgs_per_s": window.count / elapsed,
        "cpu_us_per_msg": (after.cpu - before.cpu) * 1e6 / count,
        "client_cpu_us_per_msg": (client_after - client_before) * 1e6 / count,
        **latency_summary(window.latencies),
    }

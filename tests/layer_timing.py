"""Time budgets for the in-memory layer's fan-out, measured in a fresh interpreter.

``make test`` runs under coverage, whose tracer multiplies the time of every Python line
(its subprocess patch starts it in the xdist workers too, beyond pytest-cov's ``no_cover``).
A budget for hubbub's own code is therefore measured in a child interpreter started
without coverage's environment: ``python -m tests.layer_timing NAME`` prints seconds.
"""

from __future__ import annotations

import asyncio
import gc
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable

from hubbub.layers import InMemoryChannelLayer
from tests.servers import ROOT


async def best_fan_out_seconds(layer: InMemoryChannelLayer, group: str, size: int = 1000) -> float:
    """The fastest of five group_sends to ``size`` members (each member drained in between)."""
    members = [f"specific.member{n}" for n in range(size)]
    for member in members:
        await layer.group_add(group, member)
    timings = []
    gc.disable()
    try:
        for _ in range(5):
            started = time.perf_counter()
            await layer.group_send(group, {"type": "tick"})
            timings.append(time.perf_counter() - started)
            await asyncio.gather(*(layer.receive(member) for member in members))
    finally:
        gc.enable()
    return min(timings)


def _history_layer() -> InMemoryChannelLayer:
    return InMemoryChannelLayer(groups={"chat_*": {"history": 100}})


SCENARIOS: dict[str, Callable[[], Awaitable[float]]] = {
    "plain": lambda: best_fan_out_seconds(InMemoryChannelLayer(), "big"),
    "history-layer-plain-group": lambda: best_fan_out_seconds(_history_layer(), "big"),
    "history-group": lambda: best_fan_out_seconds(_history_layer(), "chat_big"),
}


def untraced_seconds(name: str) -> float:
    """Run scenario ``name`` in a child interpreter without coverage; its best time in seconds."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("COVERAGE_")}
    result = subprocess.run(
        [sys.executable, "-m", "tests.layer_timing", name],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return float(result.stdout)


if __name__ == "__main__":
    print(asyncio.run(SCENARIOS[sys.argv[1]]()))

"""CPU time and memory of the server processes, read from outside them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import psutil


@dataclass(frozen=True)
class Reading:
    """Seconds of CPU (user + system) used so far, and resident memory in bytes."""

    cpu: float
    rss: int
    redis_cpu: float


class Meter:
    """Reads the summed CPU time and RSS of some processes (and a Redis, separately)."""

    def __init__(self, pids: Sequence[int], redis_pid: int | None = None):
        self.processes: list[psutil.Process] = [psutil.Process(pid) for pid in pids]
        self.redis = psutil.Process(redis_pid) if redis_pid else None

    def read(self) -> Reading:
        cpu = 0.0
        rss = 0
        for process in self.processes:
            times = process.cpu_times()
            cpu += times.user + times.system
            rss += process.memory_info().rss
        redis_cpu = 0.0
        if self.redis is not None:
            times = self.redis.cpu_times()
            redis_cpu = times.user + times.system
        return Reading(cpu, rss, redis_cpu)


def own_cpu() -> float:
    """CPU seconds this (load generator) process has used so far."""
    times = psutil.Process().cpu_times()
    return times.user + times.system

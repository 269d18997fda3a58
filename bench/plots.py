"""PNG plots of a run (matplotlib, headless): latency CDFs and the broadcast curves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _finish(fig: Any, ax: Any, path: Path, title: str, xlabel: str, ylabel: str) -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _cdf(path: Path, title: str, cdfs: dict[str, list[list[float]]]) -> None:
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name, points in cdfs.items():
        if points:
            ax.plot([ms for _, ms in points], [q for q, _ in points], label=name, marker=".", markersize=3)
    ax.set_xscale("log")
    _finish(fig, ax, path, title, "latency (ms, log scale)", "fraction of messages")


def _by_group_size(
    path: Path, title: str, ylabel: str, medians: dict[str, dict[str, dict[str, Any]]], key: str
) -> None:
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name, stages in medians.items():
        points = [(int(n), s[key]) for n, s in stages.items() if s.get(key) is not None]
        if points:
            ax.plot(*zip(*sorted(points), strict=False), label=name, marker="o", markersize=4)
    ax.set_xscale("log")
    ax.set_yscale("log")
    _finish(fig, ax, path, title, "clients in the group (log scale)", ylabel)


def write_plots(results: dict[str, Any], directory: Path) -> list[Path]:
    """Write the plots the results allow into ``directory``; the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    echo = results.get("echo")
    if echo:
        written.append(directory / "echo-latency-cdf.png")
        _cdf(written[-1], "Echo, 50 clients: round-trip latency", echo["cdf_ms"])
    broadcast = results.get("broadcast")
    if broadcast:
        written.append(directory / "broadcast-latency-cdf.png")
        _cdf(
            written[-1],
            "Broadcast to 1,000 clients at half capacity: publish-to-delivery latency",
            broadcast["cdf_ms_n1000"],
        )
        written.append(directory / "broadcast-deliveries.png")
        _by_group_size(
            written[-1],
            "Broadcast: deliveries/s at saturation",
            "deliveries per second",
            broadcast["medians"],
            "deliveries_per_s",
        )
        written.append(directory / "broadcast-cpu.png")
        _by_group_size(
            written[-1],
            "Broadcast: server CPU per delivery",
            "server CPU µs per delivery",
            broadcast["medians"],
            "cpu_us_per_delivery",
        )
    idle = results.get("idle")
    if idle:
        written.append(directory / "idle-setup-cpu.png")
        _by_group_size(
            written[-1],
            "Idle connections: server CPU per connection set-up",
            "ms per connection",
            idle["medians"],
            "cpu_ms_per_connect",
        )
    return written

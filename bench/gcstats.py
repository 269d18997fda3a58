"""Garbage-collection pauses of the server processes, read from their ``/metrics``.

hubbub exports ``hubbub_gc_collections_total{generation}``,
``hubbub_gc_pause_seconds_total{generation}`` and ``hubbub_gc_pause_max_seconds{generation}``
(``hubbub.gctune``; the bare app exports the same names, measured the same way, a
``gc.callbacks`` hook, with one unlabelled longest pause). Counters are summed over the
generations, the longest pause is the largest of them. A scenario scrapes every process
before and after its window; the window's collections and pause total are the
differences. The longest pause is only known since the process started, so the window's
is exact when it rose during the window (or when the window holds no collection, or
one); otherwise the reading before the window is an upper bound, and the result says so.
``since_start`` reads one scrape alone: everything since the processes started
(connecting the sockets included, where an untuned collector's full collections land).
A server without these metrics (no ``/metrics`` at all) reads as ``None``.
"""

from __future__ import annotations

import re
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

_SAMPLE = re.compile(r"^(hubbub_gc_\w+?)(?:_total)?(?:\{[^}]*\})?\s+(\S+)\s*$", re.MULTILINE)
_LONGEST = "hubbub_gc_pause_max_seconds"
SCRAPE_TIMEOUT = 15.0


@dataclass(frozen=True)
class GcReading:
    """One process's collections and pause seconds (all generations), and its longest pause."""

    collections: int
    pause_seconds: float
    max_pause_seconds: float


def parse(text: str) -> GcReading | None:
    """The GC figures in a Prometheus text exposition, or ``None`` when it has none."""
    sums: dict[str, float] = {}
    for name, value in _SAMPLE.findall(text):
        if name == _LONGEST:
            sums[name] = max(sums.get(name, 0.0), float(value))
        else:
            sums[name] = sums.get(name, 0.0) + float(value)
    if "hubbub_gc_collections" not in sums:
        return None
    return GcReading(
        int(sums["hubbub_gc_collections"]),
        sums.get("hubbub_gc_pause_seconds", 0.0),
        sums.get(_LONGEST, 0.0),
    )


def scrape(port: int) -> GcReading | None:
    """``parse`` of ``http://127.0.0.1:<port>/metrics``; ``None`` if it cannot be read."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=SCRAPE_TIMEOUT) as answer:
            return parse(answer.read().decode(errors="replace"))
    except (OSError, ValueError):
        return None


def window(before: Sequence[GcReading | None], after: Sequence[GcReading | None]) -> dict[str, Any] | None:
    """Collections, total and longest pause (ms) between two scrapes of the same processes."""
    if not before or any(r is None for r in (*before, *after)) or len(before) != len(after):
        return None
    collections = 0
    total = longest = 0.0
    bound = False
    for old, new in zip(before, after, strict=True):
        assert old is not None and new is not None
        count = new.collections - old.collections
        pause = new.pause_seconds - old.pause_seconds
        collections += count
        total += pause
        if count == 0:
            continue
        if new.max_pause_seconds > old.max_pause_seconds:
            this, this_bound = new.max_pause_seconds, False
        elif count == 1:
            this, this_bound = pause, False
        else:
            this, this_bound = old.max_pause_seconds, True
        if this > longest:
            longest, bound = this, this_bound
    return {"collections": collections, "total_ms": total * 1e3, "max_ms": longest * 1e3, "max_is_bound": bound}


def since_start(readings: Sequence[GcReading | None]) -> dict[str, Any] | None:
    """Collections, total and longest pause (ms) since the processes started, from one scrape of each."""
    if not readings or any(r is None for r in readings):
        return None
    done = [r for r in readings if r is not None]
    return {
        "collections": sum(r.collections for r in done),
        "total_ms": sum(r.pause_seconds for r in done) * 1e3,
        "max_ms": max(r.max_pause_seconds for r in done) * 1e3,
        "max_is_bound": False,
    }

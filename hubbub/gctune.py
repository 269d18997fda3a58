"""Garbage collection for a server holding tens of thousands of long-lived connections.

Theory of operation. CPython frees most objects by reference counting; its cyclic
collector exists for the rest, and walks every container object of the generations it
collects. A server with 20,000 open WebSockets holds millions of such objects (uvicorn's
protocol and transport, the consumer, its task, outbox and inbox, for every connection),
all of them alive for minutes or hours. Each full (generation 2) collection walks all of
them again with the event loop stopped: 1.2–1.6 s at 19,900 connections in the issue
that started this module, which then sets the p99 latency of everything. Broadcasts
call for them: every fan-out allocates short-lived containers (futures, coroutines,
message dicts) by the thousand, every 700 of them start a young collection, what is
still in flight is promoted, and the old generation's growth soon asks for a full one.

Three levers, all in the standard ``gc`` module, applied from the ``HUBBUB_GC`` setting:

* **Freeze** (``gc.freeze()``): every object alive now moves to a permanent generation
  that collections never walk. Done once the server is ready (the start-up heap: Django,
  the project's modules), and again each time the WebSockets open grew by
  ``freeze_after_connections`` since the last freeze. A counter in the connection
  ``opened`` hook (``hubbub.connection``) notices; the freeze runs on the event loop
  ``delay_seconds`` later, so the rest of a burst goes in the same freeze, and a wave of
  any size is frozen in steps of about that many connections. Each freeze first runs a
  full collection: it walks only what is not frozen yet (the latest step), which is work
  a natural full collection would have done anyway, and freezes no garbage.
* **Thaw**: a frozen object that becomes garbage in a reference cycle is never collected.
  A closed connection is exactly that: uvicorn's protocol and its transport, hubbub's
  consumer, its task and the exception that ended it point at each other (about 110
  container objects per connection, all of it in cycles, measured on uvicorn 0.54), so
  with freezing alone no closed connection would ever be freed. Once
  ``thaw_after_closes`` WebSockets, and a quarter of those open (``THAW_FRACTION``:
  CPython's own rule for full collections), have closed since the last thaw, everything
  is unfrozen, collected once (one full pause, as long as an untuned full collection)
  and frozen again. Closed connections then pin at most that many connections' memory.
* **Thresholds** (``gc.set_threshold``): the young generation's threshold counts
  container allocations minus deallocations. With CPython's 700, a fan-out to 10,000
  members holds far more than that in flight and runs dozens of young collections, each
  finding objects that reference counting would have freed a moment later. A threshold
  above one fan-out's objects in flight runs almost none. The cost is the pause of a young
  collection when everything survives (a wave of connections): proportional to the
  threshold, and ten times that for the middle generation.

Collection pauses are measured through ``gc.callbacks`` (count, total and longest pause
per generation, objects collected), exported by ``hubbub.metrics`` and returned by
``stats()``. Measuring is on whether ``HUBBUB_GC`` is set or not: about 1.5 µs per
collection, which is 10 % of a young collection on a near-empty heap but 0.1 % of one on a
server's (1–2 ms at 20,000 connections); ``{"measure": False}`` turns it off.

Where it runs. ``install()`` reads the setting, applies the thresholds, starts measuring
and registers the connection hooks; hubbub's ``AppConfig.ready()`` calls it, so a Django
project needs nothing more than the setting. ``started()`` is the start-up freeze (and
installs first if needed): hubbub's runserver calls it once uvicorn has started,
``hubbub.gunicorn_worker.HubbubWorker`` at its first notification to gunicorn, an
``install()`` that runs inside an event loop schedules it, and otherwise the first
WebSocket connection triggers it (plain uvicorn, which imports the application before its
loop runs; Granian; daphne). Both are safe to call again, from sync or async code.
Without the setting nothing is frozen and the thresholds stay the interpreter's; a bad
setting is logged in one line and ignored the same way (``manage.py runserver`` refuses
to start instead).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from .connection import ConnectionHooks, add_hooks

__all__ = [
    "DEFAULT_POLICY",
    "GCPolicy",
    "GCStats",
    "configured_policy",
    "install",
    "parse_policy",
    "started",
    "stats",
]

logger = logging.getLogger("hubbub.gctune")

#: A thaw also waits for this fraction of the WebSockets open to have closed: CPython's own
#: rule for full collections (the old generation grew by a quarter since the last one).
THAW_FRACTION = 0.25
#: Generations CPython reports in ``gc.callbacks`` and ``gc.get_threshold()``.
GENERATIONS = 3


@dataclass(frozen=True)
class GCPolicy:
    """What ``HUBBUB_GC`` asks for; the defaults are what ``HUBBUB_GC = {}`` gives.

    The defaults aim at a process holding 5,000–50,000 mostly idle WebSockets and
    broadcasting to large groups (docs/performance.md, "Garbage collection", has the
    measurements behind them; ``python -m bench.gcpause`` repeats them).
    """

    #: Freeze the start-up heap once the server is ready, and each wave of connections.
    freeze: bool = True
    #: ``gc.set_threshold(*thresholds)`` at install; ``None`` keeps the interpreter's
    #: (CPython: 700, 10, 10). 10,000 covers the objects in flight of a fan-out to about
    #: 5,000 members (two per member on the normal path); while 20,000 connections arrive
    #: its young pauses stayed under 20 ms and the middle generation's under 75 ms, where
    #: 50,000 took 320 ms for the middle one (measured on a loaded 2-core machine).
    thresholds: tuple[int, int, int] | None = (10_000, 10, 10)
    #: Freeze again when this many more WebSockets are open than at the last freeze (``None``:
    #: only at start-up). A thousand connections are over 110,000 objects: the freeze's
    #: collection is a pause of tens of milliseconds.
    freeze_after_connections: int | None = 1000
    #: Thaw (unfreeze, collect, refreeze) once this many WebSockets, and a quarter of those
    #: open, closed since the last thaw (``None``: never; closed connections then stay in
    #: memory). A closed connection pins about what an open one holds, some 20 KiB.
    thaw_after_closes: int | None = 1000
    #: Seconds from crossing a mark to the freeze or thaw: connections arriving in a burst
    #: meanwhile are frozen in the same go.
    delay_seconds: float = 0.5
    #: Measure collection pauses (also on without the setting).
    measure: bool = True


#: The policy of ``HUBBUB_GC = {}``.
DEFAULT_POLICY = GCPolicy()
_KEYS = tuple(GCPolicy.__dataclass_fields__)


def _count(key: str, value: Any, *, optional: bool) -> int | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        allowed = "a positive integer or None" if optional else "a positive integer"
        raise ValueError(f"HUBBUB_GC[{key!r}] must be {allowed}, got {value!r}")
    return value


def parse_policy(value: Any) -> GCPolicy | None:
    """The policy a ``HUBBUB_GC`` value asks for (``None``: the setting is absent or None).

    Raises ``ValueError`` naming the key and what it accepts.
    """
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ValueError(f"HUBBUB_GC must be a dict (keys: {', '.join(_KEYS)}) or None, got {value!r}")
    unknown = sorted(str(key) for key in value if key not in _KEYS)
    if unknown:
        raise ValueError(f"HUBBUB_GC has unknown key(s) {', '.join(unknown)}; known keys: {', '.join(_KEYS)}")
    options: dict[str, Any] = dict(value)
    for key in ("freeze", "measure"):
        if key in options and not isinstance(options[key], bool):
            raise ValueError(f"HUBBUB_GC[{key!r}] must be True or False, got {options[key]!r}")
    if options.get("thresholds") is not None:
        thresholds = options["thresholds"]
        if not isinstance(thresholds, (tuple, list)) or len(thresholds) != GENERATIONS:
            raise ValueError(f"HUBBUB_GC['thresholds'] must be three positive integers or None, got {thresholds!r}")
        options["thresholds"] = tuple(_count("thresholds", item, optional=False) for item in thresholds)
    for key in ("freeze_after_connections", "thaw_after_closes"):
        if key in options:
            _count(key, options[key], optional=True)
    delay = options.get("delay_seconds", DEFAULT_POLICY.delay_seconds)
    if isinstance(delay, bool) or not isinstance(delay, (int, float)) or not 0 <= delay <= 60:
        raise ValueError(f"HUBBUB_GC['delay_seconds'] must be a number of seconds in [0, 60], got {delay!r}")
    options["delay_seconds"] = float(delay)
    return GCPolicy(**options)


def configured_policy() -> GCPolicy | None:
    """The policy from Django's ``HUBBUB_GC`` setting (``None`` without it, or without Django settings)."""
    try:
        from django.conf import settings

        value = getattr(settings, "HUBBUB_GC", None)
    except Exception:  # settings not configured: a plain ASGI application
        return None
    return parse_policy(value)


# -- measuring ----------------------------------------------------------------------


class _PauseMeter:
    """The ``gc.callbacks`` entry: per generation, collections, pause seconds (total, longest), objects freed."""

    __slots__ = ("collected", "collections", "longest", "started", "total")

    def __init__(self) -> None:
        self.collections = [0] * GENERATIONS
        self.total = [0.0] * GENERATIONS
        self.longest = [0.0] * GENERATIONS
        self.collected = [0] * GENERATIONS
        self.started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self.started = time.perf_counter()
            return
        pause = time.perf_counter() - self.started
        generation = min(info.get("generation", GENERATIONS - 1), GENERATIONS - 1)
        self.collections[generation] += 1
        self.total[generation] += pause
        if pause > self.longest[generation]:
            self.longest[generation] = pause
        self.collected[generation] += info.get("collected", 0)


_meter = _PauseMeter()


# -- freezing -----------------------------------------------------------------------


class _Freezer:
    """Counts WebSockets opening and closing; freezes (or thaws) on the loop when a mark is crossed."""

    def __init__(self, policy: GCPolicy):
        self.policy = policy
        self.open = 0  # WebSockets open now (opened since install, minus closed)
        self.open_at_freeze = 0
        self.closed_since_thaw = 0
        self.timer: asyncio.TimerHandle | None = None
        self.started = False
        self.frozen = False

    def opened(self, consumer: Any) -> None:
        if consumer.scope["type"] != "websocket":
            return
        self.open += 1
        if not self.started:
            self.started = True
            self._soon(self._freeze_startup)
        elif self.timer is None and self._wave_due():
            self._schedule()

    async def closed(self, consumer: Any) -> None:
        if consumer.scope["type"] != "websocket":
            return
        self.open -= 1
        if self.frozen:
            self.closed_since_thaw += 1
            if self.timer is None and self._thaw_due():
                self._schedule()

    def _wave_due(self) -> bool:
        step = self.policy.freeze_after_connections
        return step is not None and self.open - self.open_at_freeze >= step

    def _thaw_due(self) -> bool:
        least = self.policy.thaw_after_closes
        return least is not None and self.closed_since_thaw >= max(least, self.open * THAW_FRACTION)

    @staticmethod
    def _soon(callback: Any) -> None:
        try:
            asyncio.get_running_loop().call_soon(callback)
        except RuntimeError:  # no loop in this thread: now
            callback()

    def _schedule(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self.timer = loop.call_later(self.policy.delay_seconds, self._due)

    def _due(self) -> None:
        self.timer = None
        if self._thaw_due():
            self.freeze("thaw")
        elif self._wave_due():
            self.freeze("wave")

    def start(self) -> None:
        if not self.started:
            self.started = True
            self._freeze_startup()

    def _freeze_startup(self) -> None:
        self.freeze("startup")

    def freeze(self, reason: str) -> None:
        """Collect what is not frozen (everything, for a thaw), then freeze the survivors."""
        began = time.perf_counter()
        if reason == "thaw":
            gc.unfreeze()
            self.closed_since_thaw = 0
        gc.collect()
        gc.freeze()
        self.frozen = True
        self.open_at_freeze = self.open
        freezes[reason] = freezes.get(reason, 0) + 1
        logger.debug(
            "gc %s: %d objects frozen in %.3f s (%d WebSockets open)",
            reason,
            gc.get_freeze_count(),
            time.perf_counter() - began,
            self.open,
        )


#: Freezes so far, by reason: ``startup``, ``wave``, ``thaw``.
freezes: dict[str, int] = {}
_installed = False
_policy: GCPolicy | None = None
_freezer: _Freezer | None = None


def install() -> GCPolicy | None:
    """Once per process: apply ``HUBBUB_GC`` (thresholds, hooks) and measure pauses; the policy in force.

    Later calls return the same policy and change nothing. Inside a running event loop the
    start-up freeze is scheduled for when the current callback returns.
    """
    global _installed, _policy, _freezer
    if _installed:
        return _policy
    _installed = True
    try:
        policy = configured_policy()
    except ValueError as exc:
        logger.error("%s: garbage collection left as it is", exc)
        policy = None
    if policy is None or policy.measure:
        gc.callbacks.append(_meter)
    if policy is None:
        return None
    _policy = policy
    if policy.thresholds is not None:
        gc.set_threshold(*policy.thresholds)
    if policy.freeze:
        _freezer = _Freezer(policy)
        add_hooks(ConnectionHooks(opened=_freezer.opened, closed=_freezer.closed))
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # started() or the first WebSocket will freeze
            return policy
        loop.call_soon(_freezer.start)
    return policy


def started() -> None:
    """The server is ready: install if not done, then freeze the start-up heap (once per process)."""
    install()
    if _freezer is not None:
        _freezer.start()


class GCStats(NamedTuple):
    """Collections and their pauses since the process started, as ``stats()`` returns them."""

    #: Per generation (0, 1, 2): collections, pause seconds in all, longest pause, objects freed.
    collections: tuple[int, ...]
    pause_seconds: tuple[float, ...]
    pause_max_seconds: tuple[float, ...]
    collected: tuple[int, ...]
    #: Objects in the permanent generation now (``gc.get_freeze_count()``).
    frozen_objects: int
    #: Freezes so far by reason (``startup``, ``wave``, ``thaw``).
    freezes: dict[str, int]
    #: ``gc.get_threshold()`` now.
    thresholds: tuple[int, ...]
    #: The policy in force (``None``: no ``HUBBUB_GC``, or not installed).
    policy: GCPolicy | None
    #: Whether pauses are being measured (zeros above otherwise).
    measuring: bool


def stats() -> GCStats:
    """This process's collections and pauses (what ``hubbub.metrics`` exports as ``hubbub_gc_*``)."""
    return GCStats(
        collections=tuple(_meter.collections),
        pause_seconds=tuple(_meter.total),
        pause_max_seconds=tuple(_meter.longest),
        collected=tuple(_meter.collected),
        frozen_objects=gc.get_freeze_count(),
        freezes=dict(freezes),
        thresholds=tuple(gc.get_threshold()),
        policy=_policy,
        measuring=_meter in gc.callbacks,
    )

"""Counters and gauges for this process, exported in Prometheus text format.

Theory of operation. The hot path only adds to plain integers on module-level
objects: no lock, no allocation, no call into a metrics library. (Increments made
from several threads at once, as sync consumers do, may rarely lose one: fine for
metrics, and what keeps them free.) Everything costly happens at scrape time:
reading the layer's own drop counter, timing a round trip through the layer,
and formatting. With ``prometheus_client`` installed, a collector reading these
numbers is registered in its default registry (when Django readies the ``hubbub`` app,
or at the first scrape; ``register_with_prometheus()``), so hubbub's metrics also appear
wherever the project already exposes that registry; ``metrics_view`` and
``metrics_app`` serve them either way, with the built-in formatter when
``prometheus_client`` is absent.

Each process counts for itself: behind several workers, scrape each one (the
``hubbub_process_info`` sample carries the PID).

Other parts of hubbub report through the public objects, e.g. recovery after a
reconnect calls ``hubbub.metrics.recoveries.inc()`` (or ``inc("gap")`` when the
missed messages were no longer in history), and the layers count every message
they lose in ``messages_lost`` by layer class and cause (``outage``,
``channel_full``, ``expired``, ``no_subscriber``).

Garbage collection is measured by ``hubbub.gctune`` (collections and pauses per
generation, objects frozen) and read from it at scrape time.

The round-trip probe goes the way messages between processes go: it sends to a
group of its own, which the Redis layers deliver through Redis, so an outage
shows as ``NaN`` rather than as a healthy in-process delivery. Each step of the
probe has a deadline: a scrape never hangs on a silent Redis.
"""

from __future__ import annotations

import heapq
import math
import os
import socket
import time
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

import anyio

from . import gctune
from .connection import ConnectionHooks, add_hooks
from .typing import Receive, Scope, Send

__all__ = [
    "Counter",
    "Gauge",
    "LabeledCounter",
    "LossCounter",
    "connections_open",
    "connections_total",
    "count_group_send",
    "drops",
    "group_sends",
    "messages_in",
    "messages_lost",
    "messages_out",
    "metrics_app",
    "metrics_view",
    "probe_layer",
    "recoveries",
    "register_with_prometheus",
    "render",
    "samples",
    "slow_client_closes",
    "stalled_clients",
]

#: Labels past this many distinct values are counted under ``"other"``: message types
#: and group names come from code, but a bug must not turn into unbounded memory.
MAX_LABELS = 1000
#: How many groups ``hubbub_busiest_group_sends`` lists.
BUSIEST = 10
#: Content type of the Prometheus text exposition format, version 0.0.4.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Counter:
    """A number that only goes up."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0

    def inc(self, n: int = 1) -> None:
        self.value += n


class LabeledCounter:
    """Counters keyed by one label value, at most ``MAX_LABELS`` of them.

    A label that is not a string (a message without a usable type, say) counts
    as ``"invalid"``; ``inc()`` without a label counts under ``default``.
    """

    __slots__ = ("counts", "default")

    def __init__(self, default: str = "invalid") -> None:
        self.counts: dict[str, int] = {}
        self.default = default

    def inc(self, label: Any = None, n: int = 1) -> None:
        if label is None:
            label = self.default
        counts = self.counts
        try:
            counts[label] += n
        except (KeyError, TypeError):  # a new label, or an unhashable one
            if not isinstance(label, str):
                label = "invalid"
            elif len(counts) >= MAX_LABELS and label != self.default:
                label = "other"
            counts[label] = counts.get(label, 0) + n

    def get(self, label: str) -> int:
        return self.counts.get(label, 0)


class LossCounter:
    """Messages lost, counted by ``(layer, cause)``; at most ``MAX_LABELS`` pairs."""

    __slots__ = ("counts",)

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str], int] = {}

    def inc(self, layer: str, cause: str, n: int = 1) -> None:
        key = (layer, cause)
        counts = self.counts
        if key not in counts and len(counts) >= MAX_LABELS:
            key = ("other", cause)
        counts[key] = counts.get(key, 0) + n

    def get(self, layer: str, cause: str) -> int:
        return self.counts.get((layer, cause), 0)


class Gauge(LabeledCounter):
    """Labelled numbers that go up and down (connections open, per protocol)."""

    __slots__ = ()

    def dec(self, label: Any = None, n: int = 1) -> None:
        self.inc(label, -n)


connections_open = Gauge()
connections_total = LabeledCounter()
messages_in = LabeledCounter()
messages_out = LabeledCounter()
group_sends = LabeledCounter()  # by group: the busiest are exported, the sum is the total
drops = LabeledCounter()
slow_client_closes = Counter()
stalled_clients = Counter()  # WebSockets lost or abandoned while not reading: hubbub.backpressure
recoveries = LabeledCounter(default="recovered")
messages_lost = LossCounter()
#: Seconds the last scrape took to send a message through the layer and get it back.
layer_roundtrip: float | None = None


def _opened(consumer: Any) -> None:
    protocol = consumer.scope["type"]
    connections_total.inc(protocol)
    connections_open.inc(protocol)


async def _closed(consumer: Any) -> None:
    connections_open.dec(consumer.scope["type"])


#: Every consumer's connection counts itself here (hubbub.connection); WebSockets count what they
#: send in their outbox (hubbub.backpressure), other protocols through ``message_out``.
add_hooks(ConnectionHooks(opened=_opened, closed=_closed, message_in=messages_in.inc, message_out=messages_out.inc))


def count_group_send(group: str) -> None:
    """Count one ``group_send`` to ``group`` (each layer's ``group_send`` calls this); the probe's are not counted."""
    if group != PROBE_GROUP:
        group_sends.inc(group)


#: This process's probe group. Group messages go through Redis on both Redis layers (a send
#: to a channel of the same process may be delivered in-process), so the probe sees an outage.
PROBE_GROUP = f"hubbub.probe.{uuid.uuid4().hex[:12]}"


async def probe_layer(layer: Any, timeout: float = 2.0) -> float | None:
    """Seconds for a group message to go through ``layer`` and back; ``None`` if not done within ``timeout``."""
    global layer_roundtrip
    try:
        # anyio's cancel scope, not asyncio.wait_for: before Python 3.12 that can swallow the
        # cancellation of a scrape that is cancelled as the round trip ends.
        with anyio.fail_after(timeout):
            layer_roundtrip = await _round_trip(layer)
    except Exception:  # an unreachable layer is what this gauge is for: report it, don't fail the scrape
        layer_roundtrip = None
    return layer_roundtrip


async def _round_trip(layer: Any) -> float:
    channel = await layer.new_channel()
    await layer.group_add(PROBE_GROUP, channel)
    try:
        started = time.perf_counter()
        await layer.group_send(PROBE_GROUP, {"type": "hubbub.probe"})  # not counted: see count_group_send
        await layer.receive(channel)
        return time.perf_counter() - started
    finally:
        await layer.group_discard(PROBE_GROUP, channel)  # does not wait on Redis for this process's channels


# -- export -------------------------------------------------------------------------

Family = tuple[str, str, str, list[tuple[dict[str, str], float]]]


def _labelled(counter: LabeledCounter, label: str) -> list[tuple[dict[str, str], float]]:
    return [({label: key}, value) for key, value in sorted(counter.counts.items())]


def samples(layer: Any = None) -> list[Family]:
    """Every metric as ``(name, type, help, [(labels, value)])``; ``layer`` adds its drop count."""
    drop_counts = dict(drops.counts)
    channel_full = getattr(layer, "dropped", None)
    if isinstance(channel_full, int):
        drop_counts["channel_full"] = channel_full
    busiest = heapq.nlargest(BUSIEST, group_sends.counts.items(), key=lambda item: item[1])
    roundtrip = layer_roundtrip
    return [
        (
            "hubbub_process_info",
            "gauge",
            "This process (one line per scraped process).",
            [({"pid": str(os.getpid()), "hostname": socket.gethostname()}, 1)],
        ),
        (
            "hubbub_connections_open",
            "gauge",
            "Connections being served now, by protocol.",
            _labelled(connections_open, "protocol"),
        ),
        (
            "hubbub_connections",
            "counter",
            "Connections served since start, by protocol.",
            _labelled(connections_total, "protocol"),
        ),
        ("hubbub_messages_in", "counter", "Messages dispatched to consumers, by type.", _labelled(messages_in, "type")),
        (
            "hubbub_messages_out",
            "counter",
            "Messages consumers sent to the server, by type.",
            _labelled(messages_out, "type"),
        ),
        (
            "hubbub_group_sends",
            "counter",
            "group_send calls on this process's channel layers.",
            [({}, sum(group_sends.counts.values()))],
        ),
        (
            "hubbub_busiest_group_sends",
            "gauge",
            f"group_send calls since start, for the {BUSIEST} busiest groups.",
            [({"group": group}, count) for group, count in busiest],
        ),
        (
            "hubbub_drops",
            "counter",
            "Messages dropped, by reason (slow_client: outbox policy; "
            "channel_full: the layer's channel was at capacity).",
            [({"reason": reason}, count) for reason, count in sorted(drop_counts.items())],
        ),
        (
            "hubbub_slow_client_closes",
            "counter",
            "Connections closed with 1013 because their outbox overflowed.",
            [({}, slow_client_closes.value)],
        ),
        (
            "hubbub_stalled_clients",
            "counter",
            "WebSocket connections lost or abandoned while their client was "
            "not reading (cut off by HUBBUB_STALLED_CLIENT_TIMEOUT).",
            [({}, stalled_clients.value)],
        ),
        (
            "hubbub_recoveries",
            "counter",
            "Reconnecting clients' recoveries, by outcome (recovered, gap).",
            _labelled(recoveries, "outcome"),
        ),
        (
            "hubbub_messages_lost",
            "counter",
            "Messages a channel layer lost, by layer class and cause (outage: "
            "Redis unreachable or silent; channel_full; expired: unread past expiry; no_subscriber: pub/sub "
            "publish to a group with members that no process received).",
            [
                ({"layer": layer_name, "cause": cause}, count)
                for (layer_name, cause), count in sorted(messages_lost.counts.items())
            ],
        ),
        (
            "hubbub_layer_roundtrip_seconds",
            "gauge",
            "Send and receive through the channel layer, timed at scrape.",
            [({}, math.nan if roundtrip is None else roundtrip)],
        ),
        *_gc_families(),
    ]


def _per_generation(values: tuple[Any, ...]) -> list[tuple[dict[str, str], float]]:
    return [({"generation": str(generation)}, value) for generation, value in enumerate(values)]


def _gc_families() -> list[Family]:
    gc_stats = gctune.stats()
    return [
        (
            "hubbub_gc_collections",
            "counter",
            "Garbage collections, by generation (hubbub.gctune; zero when not measured).",
            _per_generation(gc_stats.collections),
        ),
        (
            "hubbub_gc_pause_seconds",
            "counter",
            "Seconds the process was stopped collecting garbage, by generation.",
            _per_generation(gc_stats.pause_seconds),
        ),
        (
            "hubbub_gc_pause_max_seconds",
            "gauge",
            "Longest garbage collection pause since start, by generation.",
            _per_generation(gc_stats.pause_max_seconds),
        ),
        (
            "hubbub_gc_collected_objects",
            "counter",
            "Objects freed by the garbage collector, by generation.",
            _per_generation(gc_stats.collected),
        ),
        (
            "hubbub_gc_frozen_objects",
            "gauge",
            "Objects in the permanent generation (gc.freeze()), never walked by collections.",
            [({}, gc_stats.frozen_objects)],
        ),
        (
            "hubbub_gc_freezes",
            "counter",
            "Freezes by HUBBUB_GC, by reason (startup, wave of connections, thaw after closes).",
            [({"reason": reason}, count) for reason, count in sorted(gc_stats.freezes.items())],
        ),
        (
            "hubbub_gc_threshold",
            "gauge",
            "The collector's thresholds (gc.get_threshold()), by generation.",
            _per_generation(gc_stats.thresholds),
        ),
    ]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _format(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    return repr(float(value)) if isinstance(value, float) else str(value)


def _lines(families: Iterable[Family]) -> Iterator[str]:
    for name, kind, help_text, points in families:
        yield f"# HELP {name} {help_text}"
        yield f"# TYPE {name} {kind}"
        sample = name + "_total" if kind == "counter" else name
        for labels, value in points:
            rendered = ",".join(f'{key}="{_escape(str(val))}"' for key, val in labels.items())
            yield f"{sample}{{{rendered}}} {_format(value)}" if rendered else f"{sample} {_format(value)}"


def render(layer: Any = None) -> bytes:
    """The Prometheus text exposition of this process's metrics (built-in formatter)."""
    return ("\n".join(_lines(samples(layer))) + "\n").encode()


def _default_layer() -> Any:
    """The default layer, or ``None`` when there is none or it cannot be built (metrics still answer)."""
    from .layers import get_channel_layer

    try:
        return get_channel_layer()
    except Exception:
        return None


async def scrape() -> tuple[bytes, str]:
    """Probe the default layer, then ``(body, content type)``: prometheus_client's if installed."""
    layer = _default_layer()
    if layer is not None:
        await probe_layer(layer)
    if register_with_prometheus():
        import prometheus_client

        return prometheus_client.generate_latest(), prometheus_client.CONTENT_TYPE_LATEST
    return render(layer), CONTENT_TYPE


async def metrics_view(request: Any) -> Any:
    """Django view serving the metrics: ``path("metrics/", metrics_view)``. Protect it like an admin page."""
    from django.http import HttpResponse

    body, content_type = await scrape()
    return HttpResponse(body, content_type=content_type)


async def metrics_app(scope: Scope, receive: Receive, send: Send) -> None:
    """ASGI application serving the metrics, for routing outside Django's URLconf."""
    if scope["type"] != "http":
        raise ValueError(f"metrics_app serves HTTP, not {scope['type']!r}")
    body, content_type = await scrape()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


# -- prometheus_client ----------------------------------------------------------------


class _Collector:
    """Hands hubbub's numbers to prometheus_client at scrape time, as its own metric families."""

    def collect(self) -> Iterator[Any]:
        return self._families(samples(_default_layer()))

    def describe(self) -> Iterator[Any]:
        """The families' names, for registration: reads no layer (settings may not be ready)."""
        return self._families(samples())

    def _families(self, families: list[Family]) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        for name, kind, help_text, points in families:
            keys = sorted({key for labels, _ in points for key in labels})
            family_class = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
            family = family_class(name, help_text, labels=keys)
            for labels, value in points:
                family.add_metric([labels.get(key, "") for key in keys], value)
            yield family


_collector = _Collector()
_registered = False


def register_with_prometheus() -> bool:
    """Add hubbub's collector to prometheus_client's default registry, once; whether it is there.

    Called by hubbub's ``AppConfig.ready()`` and by the first scrape, not at import: importing
    hubbub changes no other library's global state. Without prometheus_client, nothing happens.
    """
    global _registered
    if _registered:
        return True
    try:
        from prometheus_client import REGISTRY
    except ImportError:
        return False
    REGISTRY.register(_collector)
    _registered = True
    return True

"""Counters and gauges: what consumers and layers add, and the exposition formats."""

from __future__ import annotations

import asyncio
import math
import os
import re
import subprocess
import sys
import time

import pytest
from django.test import RequestFactory

from hubbub import metrics
from hubbub.generic.websocket import AsyncWebsocketConsumer
from hubbub.layers import InMemoryChannelLayer
from hubbub.management.commands.hubbub_status import parse
from hubbub.testing import WebsocketCommunicator
from tests.servers import ROOT
from tests.waiting import ManualClock

SAMPLE_LINE = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})? \S+$')


class Echo(AsyncWebsocketConsumer):
    groups = ["echoers"]

    async def receive(self, text_data=None, bytes_data=None):
        await self.send(text_data=text_data)

    async def noop(self, event):
        pass


def value(name: str, **labels: str) -> float:
    """The value of one sample in the built-in exposition (0 when absent)."""
    for found_labels, found in parse(metrics.render().decode()).get(name, []):
        if found_labels == labels:
            return found
    return 0.0


async def test_connections_and_messages_are_counted_by_protocol_and_type():
    total, opened = metrics.connections_total.get("websocket"), metrics.connections_open.get("websocket")
    received, sent = metrics.messages_in.get("websocket.receive"), metrics.messages_out.get("websocket.send")
    comm = WebsocketCommunicator(Echo.as_asgi(), "/")
    await comm.connect()
    assert metrics.connections_open.get("websocket") == opened + 1
    for n in range(5):
        await comm.send_to(text_data=str(n))
        await comm.receive_from()
    await comm.disconnect()
    assert metrics.connections_total.get("websocket") == total + 1
    assert metrics.connections_open.get("websocket") == opened
    assert metrics.messages_in.get("websocket.receive") == received + 5
    assert metrics.messages_out.get("websocket.send") == sent + 5
    assert value("hubbub_messages_out_total", type="websocket.send") == sent + 5


async def test_a_connection_that_fails_before_it_starts_is_not_left_open(fresh_layer, monkeypatch):
    async def layer_down(*args):
        raise ConnectionError("layer down")

    async def receive():
        return {"type": "websocket.connect"}

    async def send(message):
        pass

    monkeypatch.setattr(fresh_layer, "new_channel", layer_down)
    opened = metrics.connections_open.get("websocket")
    with pytest.raises(ConnectionError):
        await Echo.as_asgi()({"type": "websocket", "path": "/"}, receive, send)
    assert metrics.connections_open.get("websocket") == opened


async def test_group_sends_are_counted_per_group_and_the_busiest_exported(fresh_layer, monkeypatch):
    # A fresh tally: every layer counts its group sends, so the rest of the suite's groups would
    # otherwise crowd this one out of the busiest few.
    monkeypatch.setattr(metrics, "group_sends", metrics.LabeledCounter())
    comm = WebsocketCommunicator(Echo.as_asgi(), "/")
    await comm.connect()
    before = metrics.group_sends.get("echoers")
    for _ in range(3):
        await fresh_layer.group_send("echoers", {"type": "noop"})
    await fresh_layer.group_send("elsewhere", {"type": "noop"})
    assert metrics.group_sends.get("echoers") == before + 3
    assert value("hubbub_busiest_group_sends", group="echoers") == before + 3
    await fresh_layer.group_send("echoers", {"type": "noop"})
    assert metrics.group_sends.get("echoers") == before + 4
    await comm.disconnect()


async def test_drops_by_reason_include_the_layers_full_channels():
    layer = InMemoryChannelLayer(capacity=1)
    channel = await layer.new_channel()
    await layer.group_add("full", channel)
    for _ in range(3):
        await layer.group_send("full", {"type": "noop"})
    text = metrics.render(layer).decode()
    assert 'hubbub_drops_total{reason="channel_full"} 2' in text


def test_recoveries_count_by_outcome():
    recovered, gaps = metrics.recoveries.get("recovered"), metrics.recoveries.get("gap")
    metrics.recoveries.inc()
    metrics.recoveries.inc("gap")
    assert (metrics.recoveries.get("recovered"), metrics.recoveries.get("gap")) == (recovered + 1, gaps + 1)
    assert value("hubbub_recoveries_total", outcome="gap") == gaps + 1


def test_labels_are_bounded_and_odd_ones_counted_as_invalid(monkeypatch):
    counter = metrics.LabeledCounter()
    monkeypatch.setattr(metrics, "MAX_LABELS", 3)
    for label in ["a", "b", "c", "d", "e"]:
        counter.inc(label)
    counter.inc(None)
    counter.inc(5)
    counter.inc(["unhashable"])
    assert counter.counts == {"a": 1, "b": 1, "c": 1, "other": 2, "invalid": 3}


def test_the_builtin_exposition_is_valid_prometheus_text():
    metrics.messages_in.inc('odd"type\\with\nnewline')
    lines = metrics.render().decode().splitlines()
    families = [line.split()[2] for line in lines if line.startswith("# TYPE")]
    assert len(families) == len(set(families)) >= 10
    for line in lines:
        if not line.startswith("#"):
            assert SAMPLE_LINE.match(line), line
    for line in lines:
        if line.startswith("# TYPE") and line.endswith("counter"):
            name = line.split()[2]
            assert all(
                not sample.startswith(name + "{") and not sample.startswith(name + " ")
                for sample in lines
                if not sample.startswith("#")
            ), f"{name} samples lack _total"
    assert 'type="odd\\"type\\\\with\\nnewline"' in "\n".join(lines)


async def test_layer_probe_times_a_round_trip_and_reports_failure_as_nan(monkeypatch):
    layer = InMemoryChannelLayer()
    roundtrip = await metrics.probe_layer(layer)
    assert roundtrip is not None and 0 <= roundtrip < 1
    layer._sweep(time.monotonic())  # a one-off receiver's empty inbox goes at the layer's next sweep
    assert layer.held() == (0, 0), "the probe leaves no channel behind"

    async def never(channel):
        await asyncio.sleep(10)

    monkeypatch.setattr(layer, "receive", never)
    assert await metrics.probe_layer(layer, timeout=0.05) is None
    assert math.isnan(value("hubbub_layer_roundtrip_seconds"))


async def test_layer_probe_on_redis(redis_url, redis_prefix):
    from hubbub.layers.redis import RedisChannelLayer

    layer = RedisChannelLayer(hosts=[redis_url], prefix=redis_prefix)
    roundtrip = await metrics.probe_layer(layer)
    assert roundtrip is not None and 0 < roundtrip < 2
    await layer.close()


async def test_metrics_view_answers_prometheus_text(monkeypatch):
    response = await metrics.metrics_view(RequestFactory().get("/metrics/"))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert b"hubbub_connections_open" in response.content
    monkeypatch.setattr(metrics, "register_with_prometheus", lambda: False)  # as without prometheus_client
    response = await metrics.metrics_view(RequestFactory().get("/metrics/"))
    assert response["Content-Type"] == metrics.CONTENT_TYPE
    assert response.content.startswith(b"# HELP hubbub_process_info")


async def test_metrics_app_serves_http_and_refuses_other_protocols():
    sent = []

    async def send(message):
        sent.append(message)

    async def receive():
        return {"type": "http.request", "body": b""}

    await metrics.metrics_app({"type": "http", "path": "/metrics"}, receive, send)
    assert sent[0]["status"] == 200
    assert b"hubbub_layer_roundtrip_seconds" in sent[1]["body"]
    with pytest.raises(ValueError, match="metrics_app serves HTTP, not 'websocket'"):
        await metrics.metrics_app({"type": "websocket", "path": "/metrics"}, receive, send)


def test_prometheus_client_registry_carries_hubbubs_metrics():
    prometheus_client = pytest.importorskip("prometheus_client")
    metrics.slow_client_closes.inc()
    text = prometheus_client.generate_latest().decode()
    samples = parse(text)
    assert samples["hubbub_slow_client_closes_total"][0][1] == metrics.slow_client_closes.value
    assert "hubbub_connections_open" in samples or "# TYPE hubbub_connections_open gauge" in text


def test_importing_hubbub_needs_no_settings_and_leaves_prometheus_clients_registry_alone():
    """Import has no side effect on another library; the app's ready() (or a first scrape) registers, once."""
    pytest.importorskip("prometheus_client")
    code = (
        "import hubbub.consumer, prometheus_client\n"
        "print(b'hubbub_connections_open' in prometheus_client.generate_latest())\n"
        "from hubbub.metrics import register_with_prometheus\n"
        "print(register_with_prometheus(), register_with_prometheus())\n"
        "print(b'hubbub_connections_open' in prometheus_client.generate_latest())"
    )
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    result = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.stdout.split("\n")[:3] == ["False", "True True", "True"], result.stderr


def test_a_django_project_with_hubbub_installed_exports_to_prometheus_clients_registry():
    pytest.importorskip("prometheus_client")
    code = (
        "import django; django.setup(); import prometheus_client\n"
        "print(b'hubbub_connections_open' in prometheus_client.generate_latest())"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    result = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "True", result.stderr


def lost_value(layer: str, cause: str) -> float:
    return value("hubbub_messages_lost_total", layer=layer, cause=cause)


async def test_in_memory_losses_are_exported_by_layer_and_cause():
    """Full member channels and messages that expired unread show in hubbub_messages_lost_total."""
    full, expired = lost_value("InMemoryChannelLayer", "channel_full"), lost_value("InMemoryChannelLayer", "expired")
    clock = ManualClock()
    layer = InMemoryChannelLayer(capacity=1, expiry=0.05, clock=clock)
    channel = await layer.new_channel()
    await layer.group_add("full", channel)
    for _ in range(3):
        await layer.group_send("full", {"type": "noop"})
    assert lost_value("InMemoryChannelLayer", "channel_full") == full + 2
    clock.advance(0.1)  # past the expiry: the one queued message is now dead
    await layer.send(channel, {"type": "fresh"})
    assert (await layer.receive(channel))["type"] == "fresh"
    assert lost_value("InMemoryChannelLayer", "expired") == expired + 1


@pytest.mark.parametrize("layer_path", ["RedisChannelLayer", "RedisPubSubChannelLayer"])
async def test_redis_messages_that_expire_unread_are_counted(redis_url, redis_prefix, layer_path):
    from hubbub.layers import redis as redis_layers

    clock = ManualClock()
    layer = getattr(redis_layers, layer_path)(hosts=[redis_url], prefix=redis_prefix, expiry=0.2, clock=clock)
    try:
        before = lost_value(layer_path, "expired")
        channel = await layer.new_channel()
        await layer.send(channel, {"type": "stale"})
        clock.advance(0.4)  # past the expiry
        await layer.send(channel, {"type": "fresh"})
        assert (await asyncio.wait_for(layer.receive(channel), 5))["type"] == "fresh"
        assert lost_value(layer_path, "expired") == before + 1
    finally:
        await layer.flush()
        await layer.close_pools()


async def test_redis_probe_goes_through_redis_so_an_outage_reads_nan_within_the_timeout():
    """In-process delivery would still work with Redis dead; the probe must not say "healthy"."""
    import shutil

    from hubbub.layers.redis import RedisChannelLayer
    from tests.servers import redis_server

    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    with redis_server() as server:
        layer = RedisChannelLayer(hosts=[server.url], socket_connect_timeout=1, command_timeout=1)
        try:
            sends = sum(metrics.group_sends.counts.values())
            assert await metrics.probe_layer(layer) is not None
            assert sum(metrics.group_sends.counts.values()) == sends  # not one of the application's sends
            server.kill()
            started = time.monotonic()
            assert await metrics.probe_layer(layer, timeout=2.0) is None
            assert time.monotonic() - started < 4.0
            assert math.isnan(value("hubbub_layer_roundtrip_seconds"))
        finally:
            await layer.close_pools()

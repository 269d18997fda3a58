"""Redis that stops answering, dies or restarts: every wait is bounded, every loss is counted.

A "silent Redis" is a real TCP listener on 127.0.0.1 that accepts and never answers
(the thing simulated, so a tiny asyncio server is fine); a stopped Redis is a private
redis-server sent SIGSTOP by PID. Nothing here touches the shared Redis's keys.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import shutil
import signal
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import websockets
from django.core.management import call_command

from hubbub import metrics
from hubbub.exceptions import ChannelLayerUnavailable
from hubbub.layers.redis import RedisChannelLayer, RedisPubSubChannelLayer
from hubbub.management.commands.hubbub_status import parse
from tests.servers import ROOT, Process, redis_server, uvicorn

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed"),
]

LAYERS = [RedisChannelLayer, RedisPubSubChannelLayer]
#: The deadlines the layers get here, and the bound each operation must keep: the deadline
#: plus a generous margin for a loaded machine (without deadlines these waits are forever).
DEADLINE = 1.0
BOUND = DEADLINE + 4.0


@pytest.fixture
def server() -> Iterator[Process]:
    with redis_server() as process:
        yield process


@asynccontextmanager
async def silent_redis() -> AsyncIterator[str]:
    """A TCP server that accepts connections and never says a word; yields its redis:// URL."""
    held: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # kept open, never written to

    listener = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        listener.close()
        for writer in held:
            writer.close()


def lost(layer_class: type, cause: str) -> int:
    return metrics.messages_lost.get(layer_class.__name__, cause)


async def timed(awaitable: Any) -> tuple[Any, float]:
    """(result or raised exception, seconds it took)."""
    started = time.monotonic()
    try:
        result: Any = await awaitable
    except Exception as exc:
        result = exc
    return result, time.monotonic() - started


@pytest.mark.parametrize("layer_class", LAYERS)
async def test_a_silent_redis_makes_sends_fail_within_the_deadline_counted_and_logged_once(layer_class, caplog):
    """Connecting to a server that never answers times out; group_send raises, counts, logs once."""
    caplog.set_level(logging.ERROR, logger="hubbub.layers.redis")
    async with silent_redis() as url:
        layer = layer_class(hosts=[url], socket_connect_timeout=DEADLINE, command_timeout=DEADLINE)
        try:
            channel, took = await timed(layer.new_channel())
            assert took < BOUND and isinstance(channel, str)  # the pub/sub layer waited for its subscriber
            before = lost(layer_class, "outage")
            for _ in range(3):
                raised, took = await timed(layer.group_send("room", {"type": "x"}))
                assert isinstance(raised, ChannelLayerUnavailable), raised
                assert took < BOUND
            raised, took = await timed(layer.send("elsewhere", {"type": "x"}))
            assert isinstance(raised, ChannelLayerUnavailable) and took < BOUND
            assert layer.lost == 4
            assert lost(layer_class, "outage") == before + 4
        finally:
            await layer.close_pools()
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Lost connection")]
    assert len(lines) == 1, lines  # one shard, one event loop: one line, however many attempts
    assert "did not answer within 1 s" in lines[0]


@pytest.mark.parametrize("layer_class", LAYERS)
async def test_a_stopped_redis_times_out_commands_then_recovers_when_continued(server, layer_class, caplog):
    """SIGSTOP: a group_send's reply never comes; it fails at the deadline; SIGCONT brings delivery back."""
    caplog.set_level(logging.WARNING, logger="hubbub.layers.redis")
    config = {"hosts": [server.url], "socket_connect_timeout": DEADLINE, "command_timeout": DEADLINE}
    owner, sender = layer_class(**config), layer_class(**config)
    try:
        channel = await owner.new_channel()
        await owner.group_add("room", channel)
        await sender.group_send("room", {"type": "before"})
        assert (await asyncio.wait_for(owner.receive(channel), BOUND))["type"] == "before"

        before = lost(layer_class, "outage")
        os.kill(server.pid, signal.SIGSTOP)
        try:
            raised, took = await timed(sender.group_send("room", {"type": "during"}))
            assert isinstance(raised, ChannelLayerUnavailable), raised
            assert DEADLINE * 0.9 <= took < BOUND
            assert lost(layer_class, "outage") == before + 1
            joined, took = await timed(owner.group_add("room", await owner.new_channel()))
            assert joined is None and took < BOUND  # a consumer's handshake would not hang either
        finally:
            os.kill(server.pid, signal.SIGCONT)

        for _ in range(100):  # the sender reconnects after its backoff
            try:
                await sender.group_send("room", {"type": "after"})
                break
            except ChannelLayerUnavailable:
                await asyncio.sleep(0.1)
        while (await asyncio.wait_for(owner.receive(channel), BOUND))["type"] != "after":
            pass
    finally:
        await owner.close_pools()
        await sender.close_pools()
    messages = [r.getMessage() for r in caplog.records]
    assert sum(m.startswith("Lost connection") for m in messages) >= 1
    back = [m for m in messages if m.startswith("Reconnected")]
    assert back and all("could not be sent" in m and " 0 message" not in m for m in back), messages


async def test_pubsub_publishes_that_reach_nobody_in_a_group_with_members_are_counted(server):
    """While the members' subscriber is cut off, every published message is either delivered or counted."""
    owner = RedisPubSubChannelLayer(hosts=[server.url], capacity=10_000)
    sender = RedisPubSubChannelLayer(hosts=[server.url])
    admin = RedisChannelLayer(hosts=[server.url])  # only its command pipe, for CLIENT KILL
    try:
        channel = await owner.new_channel()
        await owner.group_add("room", channel)
        before = lost(RedisPubSubChannelLayer, "no_subscriber")
        state = admin._state()
        sent = 0
        killed = False
        for i in range(300):
            if i == 50:
                killed = int(await state.links[0].pipe.execute("CLIENT", "KILL", "TYPE", "pubsub")) >= 1
            await sender.group_send("room", {"type": "n", "i": i})
            sent += 1
            await asyncio.sleep(0.005)
        assert killed
        unheard = lost(RedisPubSubChannelLayer, "no_subscriber") - before
        await sender.group_send("room", {"type": "last"})
        received = 0
        while (await asyncio.wait_for(owner.receive(channel), BOUND))["type"] != "last":
            received += 1
        assert received + unheard == sent  # nothing vanished uncounted
        assert sender.lost == unheard
    finally:
        for layer in (owner, sender, admin):
            await layer.close_pools()


@pytest.mark.parametrize("layer_class", LAYERS)
async def test_killed_and_restarted_redis_while_messages_flow_counts_losses_and_delivers_after(server, layer_class):
    """Kill -9 mid-stream: sends raise and count as outage; after restart, new messages arrive."""
    owner, sender = layer_class(hosts=[server.url], capacity=10_000), layer_class(hosts=[server.url])
    try:
        channel = await owner.new_channel()
        await owner.group_add("room", channel)
        before = lost(layer_class, "outage")
        refused = 0
        for i in range(40):
            if i == 20:
                server.kill()
            try:
                await sender.group_send("room", {"type": "n", "i": i})
            except ChannelLayerUnavailable:
                refused += 1
        assert refused >= 19  # every send after the kill (one may have been written before the socket closed)
        assert lost(layer_class, "outage") - before == refused == sender.lost

        server.start()
        delivered_again = False
        for attempt in range(100):  # both processes reconnect; the owner re-subscribes and rejoins
            try:
                await sender.group_send("room", {"type": "probe", "i": attempt})
            except ChannelLayerUnavailable:
                await asyncio.sleep(0.1)
                continue
            try:
                while True:
                    if (await asyncio.wait_for(owner.receive(channel), 0.2))["type"] == "probe":
                        delivered_again = True
                        break
            except asyncio.TimeoutError:
                continue
            break
        assert delivered_again
        for i in range(20):
            await sender.group_send("room", {"type": "after", "i": i})
        after = []
        while len(after) < 20:
            message = await asyncio.wait_for(owner.receive(channel), BOUND)
            if message["type"] == "after":
                after.append(message["i"])
        assert after == list(range(20))
    finally:
        await owner.close_pools()
        await sender.close_pools()


# -- a real server process ----------------------------------------------------------------


def fetch(url: str, data: bytes = None, timeout: float = BOUND + 5) -> tuple[int, str, float]:
    started = time.monotonic()
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=timeout) as response:
            status, body = response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read().decode()
    return status, body, time.monotonic() - started


def hubbub_status(url: str) -> str:
    """What ``manage.py hubbub_status --url URL`` prints."""
    out = io.StringIO()
    call_command("hubbub_status", "--url", url, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def metric(body: str, name: str, **labels: str) -> float:
    return sum(value for found, value in parse(body).get(name, []) if all(found.get(k) == v for k, v in labels.items()))


@pytest.mark.parametrize("layer_class", LAYERS)
async def test_a_server_on_a_stopped_redis_answers_handshakes_views_and_metrics_within_a_bound(server, layer_class):
    """uvicorn + SIGSTOPped Redis: handshake, view and /metrics answer in bounded time; losses are exported."""
    backend = f"{layer_class.__module__.rsplit('.', 1)[0]}.{layer_class.__name__}"
    config = {
        "hosts": [server.url],
        "socket_connect_timeout": DEADLINE,
        "command_timeout": DEADLINE,
        "prefix": "faults",
    }
    env = {"HUBBUB_FAULTS_BACKEND": backend, "HUBBUB_FAULTS_CONFIG": json.dumps(config)}
    with uvicorn("tests.faults_app:application", env=env, cwd=ROOT) as site:
        async with websockets.connect(f"{site.ws_url}/ws/room/", open_timeout=BOUND + 5) as first:
            await first.send("hello")
            assert await asyncio.wait_for(first.recv(), BOUND) == "hello"
            status, body, _ = await asyncio.to_thread(fetch, f"{site.url}/metrics/")
            assert status == 200 and metric(body, "hubbub_layer_roundtrip_seconds") >= 0  # healthy: a number

            os.kill(server.pid, signal.SIGSTOP)
            try:
                started = time.monotonic()
                try:
                    async with websockets.connect(f"{site.ws_url}/ws/room/", open_timeout=BOUND + 5) as second:
                        await second.send("still there?")  # the consumer's group_send fails; the socket stays
                        await asyncio.sleep(DEADLINE * 2)
                        assert second.close_code is None
                except websockets.InvalidStatus as exc:  # refused is acceptable too, as long as it is bounded
                    assert exc.response.status_code in (403, 500, 503)
                assert time.monotonic() - started < BOUND + DEADLINE * 2 + 1

                status, body, took = await asyncio.to_thread(fetch, f"{site.url}/send/", b"from a view")
                assert status == 503 and "unavailable" in body and took < BOUND
                status, body, took = await asyncio.to_thread(fetch, f"{site.url}/metrics/")
                assert status == 200 and took < BOUND
                assert body.count("hubbub_layer_roundtrip_seconds NaN") == 1  # the probe went through Redis
                assert metric(body, "hubbub_messages_lost_total", layer=layer_class.__name__, cause="outage") >= 2
            finally:
                os.kill(server.pid, signal.SIGCONT)

            assert first.close_code is None  # the outage closed nobody
            out = await asyncio.to_thread(hubbub_status, f"{site.url}/metrics/")
            header, row = out.splitlines()[:2]
            assert header.split()[13] == "lost" and float(row.split()[8]) >= 2, out  # five headers are two words
            assert any(
                line.split()[1:] == [layer_class.__name__, "outage"] and float(line.split()[0]) >= 2
                for line in out.splitlines()
            ), out
            unheard = 0  # accepted by Redis but not received: the subscriber was still reconnecting
            for attempt in range(100):  # back: the view's group_send reaches the socket again
                status, _, _ = await asyncio.to_thread(fetch, f"{site.url}/send/", f"back {attempt}".encode())
                if status != 202:
                    await asyncio.sleep(0.1)
                    continue
                try:
                    while not (await asyncio.wait_for(first.recv(), 1.0)).startswith("back"):
                        pass
                    break
                except asyncio.TimeoutError:
                    unheard += 1
            else:
                raise AssertionError("the socket never received a group message after Redis continued")
            assert site.output().count("Room's handler for 'websocket.receive' stopped") == 1, site.output()
            if unheard and layer_class is RedisPubSubChannelLayer:  # a publish that reached nobody is counted
                _, body, _ = await asyncio.to_thread(fetch, f"{site.url}/metrics/")
                assert metric(body, "hubbub_messages_lost_total", cause="no_subscriber") >= unheard


async def test_a_reader_waiting_out_its_backoff_is_woken_when_another_connection_finds_redis_back():
    """The pub/sub subscriber (and the list layer's readers) re-subscribe as soon as the link is back."""
    from hubbub.layers.redis.connection import HostSpec, ShardLink

    recovered: list[ShardLink] = []
    link = ShardLink(0, HostSpec("redis://127.0.0.1:1/0"), recovered.append)
    link.failed(ConnectionError("down"))
    link.backoff = lambda: 3600.0  # type: ignore[method-assign]  # only a recovery can end this wait
    waiting = asyncio.ensure_future(link.wait_to_retry())
    await asyncio.sleep(0)
    assert not waiting.done()
    link.succeeded()  # e.g. the command pipe reconnected
    await asyncio.wait_for(waiting, BOUND)
    assert recovered == [link]


def test_the_outage_error_reads_well_in_logs_and_tracebacks():
    """repr() of the error a send raises during an outage names it and its message (it used to raise)."""
    from hubbub.exceptions import ChannelLayerUnavailable
    from hubbub.layers.redis.connection import RedisUnavailable

    error = RedisUnavailable("Redis 127.0.0.1:6399 is unreachable")
    assert repr(error) == "RedisUnavailable('Redis 127.0.0.1:6399 is unreachable')"
    assert isinstance(error, ChannelLayerUnavailable) and isinstance(error, ConnectionError)

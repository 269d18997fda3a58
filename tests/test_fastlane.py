"""The fastlane: forwards written without waking the consumer, observably as the normal path would.

Each scenario runs twice through the real consumer stack, with ``HUBBUB_FASTLANE=1`` and
``=0``, and compares what the clients got and what ``hubbub.metrics`` counted; dispatch
calls are counted to tell which path a message took.
"""

from __future__ import annotations

import asyncio
import collections
import json
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

import pytest

from hubbub import metrics
from hubbub.fastlane import enabled, forward_bytes, forward_json, forward_table, forward_text
from hubbub.generic.pubsub import PubSubConsumer, publish
from hubbub.generic.websocket import (
    AsyncJsonWebsocketConsumer,
    AsyncWebsocketConsumer,
    JsonWebsocketConsumer,
    WebsocketConsumer,
)
from hubbub.layers import InMemoryChannelLayer, channel_layers, get_channel_layer
from hubbub.testing import WebsocketCommunicator
from tests.docblocks import block
from tests.test_backpressure import SCOPE, FakeServer, settle, start
from tests.waiting import eventually

DISPATCHED: collections.Counter[str] = collections.Counter()
LIVE: list[Any] = []  # consumers connected in this test
GATE = asyncio.Event()


@pytest.fixture(autouse=True)
def layer(fresh_layer, monkeypatch):
    """The fastlane on (whatever the environment says), on a default layer offering it; counts at zero."""
    monkeypatch.setenv("HUBBUB_FASTLANE", "1")
    layer = InMemoryChannelLayer()
    channel_layers.set("default", layer)
    DISPATCHED.clear()
    LIVE.clear()
    return layer


class Counted:
    """Counts the messages dispatched to the consumer's handlers, by type (the fast path dispatches none)."""

    async def dispatch(self, message: dict) -> None:
        DISPATCHED[message["type"]] += 1
        if message["type"] == "websocket.connect":
            LIVE.append(self)
        await super().dispatch(message)  # type: ignore[misc]


async def idle(count: int) -> None:
    """Wait until ``count`` consumers have connected and none is in a handler (a sync one's ends in its thread)."""
    await eventually(lambda: len(LIVE) >= count and not any(c._dispatch_lock.locked() for c in LIVE))


def modulo(consumer: Any) -> int:
    """The ``?m=`` of the connection: accept-filtered forwards take every m-th event."""
    query = consumer.scope.get("query_string", b"").decode()
    return int(query.partition("m=")[2] or 1)


def every_mth(consumer: Any, event: dict) -> bool:
    return event["n"] % modulo(consumer) == 0


class Texts(Counted, AsyncWebsocketConsumer):
    groups = ["room"]
    chat_message = forward_text("text")
    blob_ready = forward_bytes("bytes")
    built = forward_text(build=lambda event: f"<{event['n']}>")
    filtered = forward_text("text", accept=every_mth)


class Feed(Counted, AsyncJsonWebsocketConsumer):
    groups = ["room"]
    feed_item = forward_json(build=lambda event: {"item": event["item"]})
    raw = forward_json("content")
    filtered = forward_json("content", accept=every_mth)


class SyncTexts(Counted, WebsocketConsumer):
    groups = ["room"]
    chat_message = forward_text("text")
    blob_ready = forward_bytes("bytes")
    filtered = forward_text("text", accept=every_mth)


class SyncFeed(Counted, JsonWebsocketConsumer):
    groups = ["room"]
    raw = forward_json("content")
    filtered = forward_json("content", accept=every_mth)


EVENTS: list[dict] = [
    {"type": "chat.message", "text": "hello"},
    {"type": "blob.ready", "bytes": b"\x00\x01"},
    {"type": "built", "n": 7},
    {"type": "filtered", "text": "two", "content": {"n": 2}, "n": 2},
    {"type": "feed.item", "item": [1, "é"]},
    {"type": "raw", "content": {"a": None}},
    {"type": "filtered", "text": "three", "content": {"n": 3}, "n": 3},
    {"type": "chat.message", "text": "bye"},
    {"type": "filtered", "text": "four", "content": {"n": 4}, "n": 4},
]


def counters() -> dict[str, int]:
    names = {event["type"] for event in EVENTS} | {"pubsub.message", "websocket.receive"}
    counts = {f"in:{name}": metrics.messages_in.get(name) for name in names}
    counts["out:websocket.send"] = metrics.messages_out.get("websocket.send")
    counts["drops"] = metrics.drops.get("slow_client")
    return counts


def delta(before: dict[str, int]) -> dict[str, int]:
    return {key: value - before[key] for key, value in counters().items()}


async def received(comm: WebsocketCommunicator) -> list[dict]:
    frames = []
    while not await comm.receive_nothing(0.05):
        frames.append(await comm.receive_output())
    return frames


async def fan_out(consumer: type, events: list[dict], paths: tuple[str, ...] = ("/?m=1", "/?m=2", "/?m=3")) -> Any:
    """Connect one client per path, ``group_send`` each event to "room", collect each client's frames."""
    before = counters()
    clients = [WebsocketCommunicator(consumer.as_asgi(), path) for path in paths]
    LIVE.clear()
    for client in clients:
        assert (await client.connect())[0]
    await idle(len(clients))
    layer = get_channel_layer()
    for event in events:
        await layer.group_send("room", dict(event))
    frames = [await received(client) for client in clients]
    for client in clients:
        await client.disconnect()
    return frames, delta(before)


async def both_ways(monkeypatch, run: Callable[[], Awaitable[Any]]) -> tuple[Any, Any, collections.Counter[str]]:
    """``run()`` on the normal path, then on the fastlane: both results and the fastlane's dispatch counts."""
    monkeypatch.setenv("HUBBUB_FASTLANE", "0")
    normal = await run()
    monkeypatch.setenv("HUBBUB_FASTLANE", "1")
    DISPATCHED.clear()
    fast = await run()
    return normal, fast, collections.Counter(DISPATCHED)


@pytest.mark.parametrize("consumer", [Texts, Feed, SyncTexts, SyncFeed], ids=lambda c: c.__name__)
async def test_forwards_send_the_same_frames_in_the_same_order_and_count_the_same_without_dispatching(
    monkeypatch, consumer
):
    events = [e for e in EVENTS if e["type"].replace(".", "_") in forward_table(consumer).lanes]
    normal, fast, dispatched = await both_ways(monkeypatch, lambda: fan_out(consumer, events))
    assert fast == normal
    frames, counted = fast
    assert all(frames), "every client got frames"
    assert frames[0] != frames[1], "accept= filtered per member"
    assert counted["out:websocket.send"] == sum(map(len, frames))
    for kind in {event["type"] for event in events}:
        assert counted[f"in:{kind}"] == 3 * sum(event["type"] == kind for event in events)
    assert not set(dispatched) & {e["type"] for e in events}, "no group message woke a consumer"


class Sorted(Counted, AsyncJsonWebsocketConsumer):
    groups = ["room"]
    raw = forward_json("content")

    @classmethod
    async def encode_json(cls, content):
        return json.dumps(content, sort_keys=True, separators=(",", ":"))


class Awaiting(Sorted):
    @classmethod
    async def encode_json(cls, content):
        await asyncio.sleep(0)
        return await super().encode_json(content)


@pytest.mark.parametrize(("consumer", "dispatched"), [(Sorted, 0), (Awaiting, 2)], ids=["completes", "suspends"])
async def test_json_forwards_use_the_classes_encode_json_and_one_that_suspends_keeps_the_normal_path(
    consumer, dispatched
):
    events = [{"type": "raw", "content": {"b": n, "a": 2}} for n in range(2)]
    (frames,), _ = await fan_out(consumer, events, paths=("/",))
    assert [frame["text"] for frame in frames] == ['{"a":2,"b":0}', '{"a":2,"b":1}']
    assert DISPATCHED["raw"] == dispatched


async def test_a_message_arriving_while_a_handler_awaits_waits_for_it_and_keeps_the_order(monkeypatch):
    class Slow(Counted, AsyncWebsocketConsumer):
        groups = ["room"]
        chat_message = forward_text("text")

        async def receive(self, text_data=None, bytes_data=None):
            await self.send(text_data="a")
            await GATE.wait()
            await self.send(text_data="b")

    async def run():
        GATE.clear()
        client = WebsocketCommunicator(Slow.as_asgi(), "/")
        assert (await client.connect())[0]
        await client.send_to(text_data="go")
        assert await client.receive_from() == "a"
        layer = get_channel_layer()
        await layer.group_send("room", {"type": "chat.message", "text": "during"})
        GATE.set()
        frames = [await client.receive_from(), await client.receive_from()]
        await layer.group_send("room", {"type": "chat.message", "text": "after"})
        frames.append(await client.receive_from())
        await client.disconnect()
        return frames

    normal, fast, dispatched = await both_ways(monkeypatch, run)
    assert fast == normal == ["b", "during", "after"]
    assert dispatched["chat.message"] == 1, "the one sent during the handler took the normal path, the next did not"


async def test_a_closed_connection_drops_group_messages_as_before(monkeypatch):
    class Closer(Counted, AsyncWebsocketConsumer):
        groups = ["room"]
        chat_message = forward_text("text")

        async def receive(self, text_data=None, bytes_data=None):
            await self.close(code=4000)

    async def run():
        before = counters()
        client = WebsocketCommunicator(Closer.as_asgi(), "/")
        assert (await client.connect())[0]
        await client.send_to(text_data="close, please")
        frames = [await client.receive_output()]
        await get_channel_layer().group_send("room", {"type": "chat.message", "text": "late"})
        frames += await received(client)
        await client.disconnect()
        return frames, delta(before)

    normal, fast, dispatched = await both_ways(monkeypatch, run)
    assert fast == normal
    assert fast[0][0] == {"type": "websocket.close", "code": 4000}
    assert dispatched["chat.message"] == 1, "after the close, the normal path handles it"


class Pushed(Counted, AsyncWebsocketConsumer):
    groups = ["room"]
    chat_message = forward_text("text")
    codes: ClassVar[list[int]] = []

    async def disconnect(self, code):
        self.codes.append(code)


async def test_the_outbox_bounds_and_the_1013_cut_off_apply_on_the_fast_path(monkeypatch):
    async def run():
        Pushed.codes = []
        before = counters()
        server = FakeServer()
        task = await start(Pushed.as_asgi(outbox_max_messages=5), server)
        await settle()  # the listener waits: group messages may take the fastlane
        server.writable.clear()
        layer = get_channel_layer()
        for n in range(20):
            await layer.group_send("room", {"type": "chat.message", "text": str(n)})
        await settle()
        server.writable.set()
        await asyncio.wait_for(task, 5)
        return server.sent, Pushed.codes, delta(before)

    normal, fast, dispatched = await both_ways(monkeypatch, run)
    assert fast == normal
    sent, codes, counted = fast
    assert codes == [1013]
    assert sent[-1] == {"type": "websocket.close", "code": 1013, "reason": "try again later"}
    assert counted["drops"] > 0
    assert dispatched["chat.message"] < 20, "the frames before the overflow took the fastlane"


async def test_drop_oldest_keeps_the_same_newest_frames_on_both_paths(monkeypatch):
    async def run():
        server = FakeServer()
        task = await start(Pushed.as_asgi(outbox_max_messages=3, outbox_policy="drop_oldest"), server)
        await settle()
        server.writable.clear()
        for n in range(10):
            await get_channel_layer().group_send("room", {"type": "chat.message", "text": str(n)})
        await settle()
        server.writable.set()
        await settle()
        await server.inbox.put({"type": "websocket.disconnect", "code": 1000})
        await asyncio.wait_for(task, 5)
        return server.texts()

    normal, fast, _ = await both_ways(monkeypatch, run)
    assert fast == normal == ["0", "7", "8", "9"]


async def test_a_server_writing_prepared_frames_gets_one_frame_per_fan_out_and_plain_sends_when_not_writable():
    before = counters()
    written: list[Any] = []
    servers = [FakeServer() for _ in range(3)]

    def writer(server):
        def write(frame):
            if not server.writable.is_set():
                return False
            written.append(frame)
            return True

        return write

    tasks = []
    for server in servers:
        extension = {"write": writer(server), "send": server.send}
        scope = dict(SCOPE, extensions={"hubbub.prepared_frames": extension})
        app = Pushed.as_asgi()
        tasks.append(asyncio.ensure_future(app(scope, server.receive, server.send)))
        await server.inbox.put({"type": "websocket.connect"})
    for server in servers:
        while not server.sent:
            await asyncio.sleep(0.001)
    servers[2].writable.clear()
    await get_channel_layer().group_send("room", {"type": "chat.message", "text": "hi"})
    assert len(written) == 2 and written[0] is written[1], "one frame, shared by the fan-out"
    assert written[0].message == {"type": "websocket.send", "text": "hi"}
    servers[2].writable.set()
    await settle()
    assert servers[2].texts() == ["hi"], "the member the server could not write to got it as a plain send"
    assert delta(before)["out:websocket.send"] == 3
    assert not DISPATCHED["chat.message"]
    for server in servers:
        await server.inbox.put({"type": "websocket.disconnect", "code": 1000})
    await asyncio.gather(*tasks)


async def test_prepared_frames_are_not_written_past_a_middleware_that_wraps_send():
    """A middleware wrapping ``send`` sees every frame: past one, fan-out frames go through ``send``."""
    before = counters()
    written: list[Any] = []
    server = FakeServer()
    seen: list[Any] = []

    async def wrapped_send(message):
        seen.append(message.get("text"))
        await server.send(message)

    extension = {"write": written.append, "send": server.send}
    scope = dict(SCOPE, extensions={"hubbub.prepared_frames": extension})
    task = asyncio.ensure_future(Pushed.as_asgi()(scope, server.receive, wrapped_send))
    await server.inbox.put({"type": "websocket.connect"})
    while not server.sent:
        await asyncio.sleep(0.001)
    await get_channel_layer().group_send("room", {"type": "chat.message", "text": "hi"})
    await settle()
    assert written == [], "the server's writer was bypassed"
    assert seen[-1] == "hi" and server.texts() == ["hi"], "the middleware saw the frame, the client got it"
    assert not DISPATCHED["chat.message"], "still the fastlane: no handler ran"
    assert delta(before)["out:websocket.send"] == 1
    await server.inbox.put({"type": "websocket.disconnect", "code": 1000})
    await task


async def test_a_class_overriding_send_keeps_the_normal_path():
    class Decorated(Counted, AsyncWebsocketConsumer):
        groups = ["room"]
        chat_message = forward_text("text")

        async def send(self, text_data=None, bytes_data=None, close=False):
            await super().send(text_data=f"[{text_data}]", close=close)

    assert not forward_table(Decorated)
    (frames,), _ = await fan_out(Decorated, [{"type": "chat.message", "text": "x"}], paths=("/",))
    assert frames == [{"type": "websocket.send", "text": "[x]"}]
    assert DISPATCHED["chat.message"] == 1


class JsonMix(AsyncJsonWebsocketConsumer):
    note = forward_text("text")
    item = forward_json("content")


class OwnSendJson(JsonMix):
    async def send_json(self, content, close=False):
        await super().send_json({"wrapped": content}, close)


class OwnBaseSend(JsonMix):
    async def base_send(self, message):
        raise AssertionError("never called: __call__ sets the instance's own")


class InstanceEncoder(JsonMix):
    async def encode_json(self, content):  # not a classmethod: only the consumer can call it
        return json.dumps(content)


@pytest.mark.parametrize(
    ("consumer", "usable"),
    [
        (JsonMix, {"note", "item"}),
        (OwnSendJson, {"note"}),
        (OwnBaseSend, set()),
        (InstanceEncoder, {"note"}),
        (SyncFeed, {"raw", "filtered"}),
    ],
    ids=lambda value: value.__name__ if isinstance(value, type) else None,
)
def test_overriding_send_json_or_base_send_or_encode_json_keeps_the_forwards_that_depend_on_them_normal(
    consumer, usable
):
    table = forward_table(consumer)
    assert {name for name in table.lanes if table.lane(name.replace("_", ".")) is not None} == usable
    assert bool(table) == bool(usable)


async def test_a_forward_is_an_ordinary_handler_on_an_instance():
    sent = []

    class Probe(AsyncWebsocketConsumer):
        chat_message = forward_text("text", accept=lambda consumer, event: event["text"] != "skip")

        async def send(self, text_data=None, bytes_data=None, close=False):
            sent.append(text_data)

    probe = Probe()
    await probe.chat_message({"type": "chat.message", "text": "one"})
    await probe.chat_message({"type": "chat.message", "text": "skip"})
    assert sent == ["one"]
    assert isinstance(Probe.chat_message, type(forward_text("t")))


def test_a_forward_needs_a_key_or_a_builder_and_a_plain_accept():
    with pytest.raises(TypeError, match="exactly one"):
        forward_text()
    with pytest.raises(TypeError, match="exactly one"):
        forward_json("content", build=lambda event: event)

    async def later(consumer, event):
        return True

    with pytest.raises(TypeError, match="plain function"):
        forward_bytes("bytes", accept=later)


def test_the_environment_overrides_the_setting(monkeypatch, settings):
    settings.HUBBUB_FASTLANE = False
    monkeypatch.delenv("HUBBUB_FASTLANE", raising=False)
    assert not enabled()
    monkeypatch.setenv("HUBBUB_FASTLANE", "1")
    assert enabled()
    settings.HUBBUB_FASTLANE = True
    monkeypatch.setenv("HUBBUB_FASTLANE", "0")
    assert not enabled()


async def test_pubsub_fan_out_takes_the_fastlane_and_skips_what_a_subscriber_already_has(monkeypatch, layer):
    class CountedPubSub(Counted, PubSubConsumer):
        pass

    async def run():
        clients = [WebsocketCommunicator(CountedPubSub.as_asgi(), "/") for _ in range(2)]
        for client in clients:
            assert (await client.connect())[0]
            await client.send_json_to({"type": "subscribe", "group": "news"})
            assert (await client.receive_json_from())["type"] == "subscribed"
        for n in range(3):
            await publish("news", {"n": n}, layer=layer)
        frames = [await received(client) for client in clients]
        for client in clients:
            await client.disconnect()
        return frames

    normal, fast, dispatched = await both_ways(monkeypatch, run)
    assert fast == normal
    assert [json.loads(f["text"])["data"] for f in fast[0]] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert not dispatched["pubsub.message"]


def spy_on_sinks(layer: Any, monkeypatch) -> dict[str, Any]:
    """The sinks attached to ``layer`` now, by channel (watching its ``attach_direct``/``detach_direct``)."""
    attached: dict[str, Any] = {}
    attach, detach = layer.attach_direct, layer.detach_direct

    def attach_direct(channel, sink):
        attached[channel] = sink
        attach(channel, sink)

    def detach_direct(channel, sink):
        if attached.get(channel) is sink:
            del attached[channel]
        detach(channel, sink)

    monkeypatch.setattr(layer, "attach_direct", attach_direct)
    monkeypatch.setattr(layer, "detach_direct", detach_direct)
    return attached


class Failing(Counted, AsyncWebsocketConsumer):
    groups = ["room"]
    chat_message = forward_text("text")

    async def receive(self, text_data=None, bytes_data=None):
        raise RuntimeError("a bug in the handler")


async def test_the_sink_is_attached_once_accepted_and_detached_when_the_consumer_ends_even_by_an_error(
    monkeypatch, layer
):
    attached = spy_on_sinks(layer, monkeypatch)
    leaving, failing = WebsocketCommunicator(Pushed.as_asgi(), "/"), WebsocketCommunicator(Failing.as_asgi(), "/")
    for client in (leaving, failing):
        assert (await client.connect())[0]
    assert len(attached) == 2
    await leaving.disconnect()
    assert len(attached) == 1
    await failing.send_to(text_data="boom")
    with pytest.raises(RuntimeError, match="a bug in the handler"):
        await failing.wait()
    assert attached == {}


async def test_a_consumer_whose_teardown_raises_lets_go_of_its_sink_all_the_same(monkeypatch, layer):
    class BadTeardown(Pushed):
        async def _teardown(self):
            raise RuntimeError("teardown failed")

    attached = spy_on_sinks(layer, monkeypatch)
    client = WebsocketCommunicator(BadTeardown.as_asgi(), "/")
    assert (await client.connect())[0]
    assert len(attached) == 1
    await client.send_input({"type": "websocket.disconnect", "code": 1000})
    with pytest.raises(RuntimeError, match="teardown failed"):
        await client.wait()
    assert attached == {}


async def test_the_documented_example_forwards_scores_to_followers_and_announcements_to_all(layer):
    namespace: dict[str, Any] = {}
    exec(block("consumers.md", "Fastlane: forwarding group messages", "python"), namespace)

    class Scores(Counted, namespace["ScoreConsumer"]):
        pass

    clients = [WebsocketCommunicator(Scores.as_asgi(), "/") for _ in range(3)]
    for client, team in zip(clients, ("lions", "lions", "tigers"), strict=True):
        assert (await client.connect())[0]
        await client.send_json_to({"follow": team})
    await idle(3)
    await layer.group_send("scores", {"type": "score.update", "team": "lions", "score": [2, 1]})
    await layer.group_send("scores", {"type": "announcement", "text": "Half time"})
    frames = [await received(client) for client in clients]
    score = {"type": "websocket.send", "text": '{"team": "lions", "score": [2, 1]}'}
    half_time = {"type": "websocket.send", "text": "Half time"}
    assert frames == [[score, half_time], [score, half_time], [half_time]]
    assert not DISPATCHED["score.update"] and not DISPATCHED["announcement"]
    for client in clients:
        await client.disconnect()

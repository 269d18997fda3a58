"""The pub/sub protocol in-process: WebSocket consumer and SSE stream, good and bad input, on every layer."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from hubbub import metrics, refusals
from hubbub.generic.pubsub import PubSubConsumer, PubSubEventStream, publish
from hubbub.ratelog import RateLimitedLog
from hubbub.testing import HttpCommunicator, WebsocketCommunicator
from tests.extension_layers import extension_default_layer

pytestmark = pytest.mark.timeout(20)

fresh_layer = extension_default_layer("presence", "history")  # overrides conftest's in-memory one


@pytest.fixture(autouse=True)
def history(fresh_layer):
    fresh_layer.configure_group("news*", history=50)
    return fresh_layer


class Guarded(PubSubConsumer):
    """Subscribing to ``secret*`` and publishing to ``readonly*`` are refused."""

    max_subscriptions = 3

    async def can_subscribe(self, group: str) -> bool:
        return not group.startswith("secret")

    async def can_publish(self, group: str) -> bool:
        return not group.startswith("readonly")


class GuardedStream(PubSubEventStream):
    can_subscribe = Guarded.can_subscribe
    can_publish = Guarded.can_publish


async def client(consumer: type = Guarded) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(consumer.as_asgi(), "/ws/pubsub/")
    assert (await communicator.connect())[0]
    return communicator


async def subscribe(ws: WebsocketCommunicator, group: str, **extra: Any) -> dict[str, Any]:
    await ws.send_json_to({"type": "subscribe", "group": group, **extra})
    reply = await ws.receive_json_from()
    assert reply["type"] == "subscribed", reply
    return reply


async def frames(ws: WebsocketCommunicator, count: int) -> list[dict[str, Any]]:
    return [await ws.receive_json_from() for _ in range(count)]


# -- WebSocket: subscribe, publish, recover ------------------------------------------------


async def test_subscribe_then_publish_reaches_subscribers_only():
    alice, bob, carol = await client(), await client(), await client()
    fresh = await subscribe(alice, "news")
    assert fresh["recovered"] is True and fresh["offset"] == 0 and fresh["missed"] == 0 and fresh["epoch"]
    await subscribe(bob, "news")
    await carol.send_json_to({"type": "publish", "group": "news", "data": {"text": "hi"}})
    for ws in (alice, bob):
        assert await ws.receive_json_from() == {
            "type": "message",
            "group": "news",
            "data": {"text": "hi"},
            "epoch": fresh["epoch"],
            "offset": 1,
        }
    await carol.send_json_to({"type": "ping"})
    assert await carol.receive_json_from() == {"type": "pong"}  # a message would have come first
    for ws in (alice, bob, carol):
        await ws.disconnect()


async def test_server_code_publishes_with_the_helper_and_plain_groups_have_no_offsets():
    ws = await client()
    plain = await subscribe(ws, "plain")
    assert plain["epoch"] is None and plain["offset"] == 0
    await publish("plain", [1, 2, 3])
    assert await ws.receive_json_from() == {
        "type": "message",
        "group": "plain",
        "data": [1, 2, 3],
        "epoch": None,
        "offset": None,
    }
    await ws.disconnect()


async def test_reconnecting_with_since_gets_the_missed_messages_then_live_ones():
    ws = await client()
    first = await subscribe(ws, "news")
    await publish("news", "one")
    assert (await ws.receive_json_from())["offset"] == 1
    await ws.disconnect()
    for text in ("two", "three"):
        await publish("news", text)
    ws = await client()
    recovered_before = metrics.recoveries.get("recovered")
    await ws.send_json_to({"type": "subscribe", "group": "news", "since": {"epoch": first["epoch"], "offset": 1}})
    replayed = await frames(ws, 3)
    assert metrics.recoveries.get("recovered") == recovered_before + 1
    assert [(f["type"], f.get("data"), f["offset"]) for f in replayed] == [
        ("message", "two", 2),
        ("message", "three", 3),
        ("subscribed", None, 3),
    ]
    assert replayed[2]["recovered"] is True and replayed[2]["missed"] == 2
    await publish("news", "four")
    assert (await ws.receive_json_from())["offset"] == 4
    await ws.disconnect()


async def test_a_thousand_missed_messages_are_replayed_in_order(fresh_layer):
    fresh_layer.configure_group("bulk", history=1000)
    ws = await client()
    first = await subscribe(ws, "bulk")
    await ws.disconnect()
    for n in range(1000):
        await publish("bulk", n)
    ws = await client()
    await ws.send_json_to({"type": "subscribe", "group": "bulk", "since": {"epoch": first["epoch"], "offset": 0}})
    replayed = await frames(ws, 1001)
    assert [f["data"] for f in replayed[:1000]] == list(range(1000))
    assert replayed[1000]["type"] == "subscribed" and replayed[1000]["missed"] == 1000
    await ws.disconnect()


async def test_a_lost_gap_says_recovered_false_and_continues_from_the_latest_offset():
    ws = await client()
    await publish("news", "before")
    gaps_before = metrics.recoveries.get("gap")
    reply = await subscribe(ws, "news", since={"epoch": "an-epoch-from-before-a-restart", "offset": 7})
    assert reply["recovered"] is False and reply["missed"] == 0 and reply["offset"] == 1
    assert metrics.recoveries.get("gap") == gaps_before + 1
    await publish("news", "after")
    assert (await ws.receive_json_from())["data"] == "after"
    await ws.disconnect()


async def test_messages_sent_during_the_handoff_arrive_exactly_once(history):
    ws = await client()
    first = await subscribe(ws, "news")
    await ws.send_json_to({"type": "unsubscribe", "group": "news"})
    await ws.receive_json_from()
    await publish("news", "missed")
    real_history = history.group_history

    async def history_racing_a_publish(group, **kwargs):
        await publish(group, "during")  # lands in the channel (already a member) and in history
        return await real_history(group, **kwargs)

    history.group_history = history_racing_a_publish
    await ws.send_json_to({"type": "subscribe", "group": "news", "since": {"epoch": first["epoch"], "offset": 0}})
    got = await frames(ws, 3)
    history.group_history = real_history
    await publish("news", "live")
    got.append(await ws.receive_json_from())
    assert [(f["type"], f.get("data")) for f in got] == [
        ("message", "missed"),
        ("message", "during"),
        ("subscribed", None),
        ("message", "live"),
    ]
    await ws.send_json_to({"type": "ping"})
    assert await ws.receive_json_from() == {"type": "pong"}  # and no duplicate "during" in between
    await ws.disconnect()


async def test_unsubscribe_stops_delivery():
    ws = await client()
    await subscribe(ws, "news")
    await ws.send_json_to({"type": "unsubscribe", "group": "news"})
    assert await ws.receive_json_from() == {"type": "unsubscribed", "group": "news"}
    await publish("news", "unheard")
    await ws.send_json_to({"type": "ping"})
    assert await ws.receive_json_from() == {"type": "pong"}
    await ws.disconnect()


async def test_a_closed_connection_leaves_its_groups(fresh_layer):
    ws = await client()
    await subscribe(ws, "news")
    await subscribe(ws, "plain", presence={"name": "x"})
    await ws.receive_json_from()  # presence list
    assert await fresh_layer.group_count("news") == 1
    await ws.disconnect()
    assert await fresh_layer.group_count("news") == 0
    assert await fresh_layer.group_count("plain") == 0
    assert await fresh_layer.presence("plain") == []


async def test_subscriptions_never_change_a_class_level_groups_list(fresh_layer):
    class WithGroups(PubSubConsumer):
        groups = ["everyone"]

    one, two = await client(WithGroups), await client(WithGroups)
    await subscribe(one, "news")
    await subscribe(two, "plain")
    assert WithGroups.groups == ["everyone"]
    assert await fresh_layer.group_count("plain") == 1
    await one.disconnect()
    await two.disconnect()
    assert await fresh_layer.group_count("everyone") == 0


async def test_subclasses_can_extend_request_methods():
    class Counting(PubSubConsumer):
        pings = 0

        async def ping(self, content):
            type(self).pings += 1
            await super().ping(content)

    ws = await client(Counting)
    await ws.send_json_to({"type": "ping"})
    assert await ws.receive_json_from() == {"type": "pong"}
    assert Counting.pings == 1
    await ws.disconnect()


async def test_presence_lists_members_and_announces_joins_and_leaves():
    ann, bob = await client(), await client()
    await subscribe(ann, "room", presence={"name": "Ann"})
    listed = await ann.receive_json_from()
    assert listed["type"] == "presence" and [m["info"] for m in listed["members"]] == [{"name": "Ann"}]
    own_join = await ann.receive_json_from()
    assert own_join["type"] == "join" and own_join["member"]["info"] == {"name": "Ann"}
    await subscribe(bob, "room", presence={"name": "Bob"})
    joined = await ann.receive_json_from()
    assert joined["type"] == "join" and joined["group"] == "room" and joined["member"]["info"] == {"name": "Bob"}
    assert set(joined["member"]) == {"channel", "user_id", "info", "joined_at"}
    await ann.send_json_to({"type": "presence", "group": "room"})
    listed = await ann.receive_json_from()
    assert [m["info"]["name"] for m in listed["members"]] == ["Ann", "Bob"]
    await bob.disconnect()
    left = await ann.receive_json_from()
    assert left["type"] == "leave" and left["member"]["info"] == {"name": "Bob"}
    await ann.disconnect()


async def test_a_plain_subscriber_sees_presence_events_without_being_listed():
    watcher, ann = await client(), await client()
    await subscribe(watcher, "room")
    await subscribe(ann, "room", presence=None)
    assert [f["type"] for f in await frames(ann, 2)] == ["presence", "join"]
    assert (await watcher.receive_json_from())["type"] == "join"
    await ann.send_json_to({"type": "unsubscribe", "group": "room"})
    assert (await ann.receive_json_from())["type"] == "unsubscribed"  # and not its own leave
    assert (await watcher.receive_json_from())["type"] == "leave"
    await ann.send_json_to({"type": "presence", "group": "room"})
    assert (await ann.receive_json_from())["code"] == "not_subscribed"
    await watcher.send_json_to({"type": "presence", "group": "room"})
    assert (await watcher.receive_json_from())["members"] == []
    await watcher.disconnect()
    await ann.disconnect()


# -- WebSocket: bad input gets an error frame, and the connection keeps working ------------

TOO_LONG = "g" * 100


@pytest.mark.parametrize(
    "frame, code",
    [
        ("{not json", "bad_json"),
        (json.dumps([1, 2]), "unknown_type"),
        (json.dumps("subscribe"), "unknown_type"),
        (json.dumps({"group": "news"}), "unknown_type"),
        (json.dumps({"type": "shout"}), "unknown_type"),
        (json.dumps({"type": 5}), "unknown_type"),
        (json.dumps({"type": "subscribe"}), "bad_group"),
        (json.dumps({"type": "subscribe", "group": 5}), "bad_group"),
        (json.dumps({"type": "subscribe", "group": "has space"}), "bad_group"),
        (json.dumps({"type": "subscribe", "group": "é"}), "bad_group"),
        (json.dumps({"type": "subscribe", "group": TOO_LONG}), "bad_group"),
        (json.dumps({"type": "subscribe", "group": "news", "since": 3}), "bad_since"),
        (json.dumps({"type": "subscribe", "group": "news", "since": {"epoch": 1, "offset": 1}}), "bad_since"),
        (json.dumps({"type": "subscribe", "group": "news", "since": {"epoch": "e", "offset": -1}}), "bad_since"),
        (json.dumps({"type": "subscribe", "group": "news", "since": {"epoch": "e", "offset": "1"}}), "bad_since"),
        (json.dumps({"type": "subscribe", "group": "news", "since": {"epoch": "e", "offset": True}}), "bad_since"),
        (json.dumps({"type": "subscribe", "group": "secret_plans"}), "forbidden"),
        (json.dumps({"type": "unsubscribe", "group": "news"}), "not_subscribed"),
        (json.dumps({"type": "presence", "group": "news"}), "not_subscribed"),
        (json.dumps({"type": "publish", "group": "news"}), "bad_message"),
        (json.dumps({"type": "publish", "group": "bad group", "data": 1}), "bad_group"),
        (json.dumps({"type": "publish", "group": "readonly_feed", "data": 1}), "forbidden"),
        ("x" * (64 * 1024 + 1), "too_large"),
        (json.dumps({"type": "publish", "group": "news", "data": "é" * 40_000}), "too_large"),  # 80 KB of UTF-8
        ("[" * 2000 + "]" * 2000, "too_deep"),  # json.loads alone would raise RecursionError
        ('{"type": "publish", "group": "news", "data": ' + "[" * 129 + "]" * 129 + "}", "too_deep"),
    ],
)
async def test_bad_input_gets_an_error_frame_and_the_connection_stays_open(frame, code):
    ws = await client()
    await ws.send_to(text_data=frame)
    error = await ws.receive_json_from()
    assert error["type"] == "error" and error["code"] == code and error["message"]
    await ws.send_json_to({"type": "ping"})
    assert await ws.receive_json_from() == {"type": "pong"}
    await ws.disconnect()


async def test_a_frame_that_cannot_be_read_is_logged_once_without_a_traceback(caplog, monkeypatch):
    """bad_json, bad_frame, too_large and too_deep are each one WARNING line naming the error, path and client."""
    monkeypatch.setattr(refusals, "_lines", RateLimitedLog(refusals.logger))
    ws = await client()
    with caplog.at_level(logging.WARNING, logger="hubbub.consumer"):
        for _ in range(3):
            await ws.send_to(text_data="[" * 3000)
            assert (await ws.receive_json_from())["code"] == "too_deep"
    lines = [record for record in caplog.records if record.name == "hubbub.consumer"]
    assert len(lines) == 1 and lines[0].exc_info is None
    assert "error too_deep (JSON nested more than 128 deep), path /ws/pubsub/" in lines[0].getMessage()
    await ws.disconnect()


async def test_binary_frames_get_an_error():
    ws = await client()
    await ws.send_to(bytes_data=b"\x00")
    assert (await ws.receive_json_from())["code"] == "bad_frame"
    await ws.disconnect()


async def test_subscribing_twice_and_too_often_are_errors_naming_the_group():
    ws = await client()
    await subscribe(ws, "news")
    await ws.send_json_to({"type": "subscribe", "group": "news"})
    assert await ws.receive_json_from() == {
        "type": "error",
        "code": "already_subscribed",
        "message": "already subscribed to this group",
        "group": "news",
    }
    await subscribe(ws, "b")
    await subscribe(ws, "c")
    await ws.send_json_to({"type": "subscribe", "group": "d"})
    error = await ws.receive_json_from()
    assert error["code"] == "too_many_subscriptions" and error["group"] == "d"
    await ws.disconnect()


async def test_a_forbidden_subscribe_joins_nothing(fresh_layer):
    ws = await client()
    await ws.send_json_to({"type": "subscribe", "group": "secret", "presence": "x"})
    assert (await ws.receive_json_from())["code"] == "forbidden"
    assert await fresh_layer.group_count("secret") == 0
    assert await fresh_layer.presence("secret") == []
    await ws.disconnect()


# -- SSE -----------------------------------------------------------------------------------


class EventStream:
    """An SSE request to ``GuardedStream`` in-process: ``events()`` parses what it streamed."""

    def __init__(
        self, query: str = "", headers: list[tuple[bytes, bytes]] | None = None, method: str = "GET", body: bytes = b""
    ):
        self.http = HttpCommunicator(
            GuardedStream.as_asgi(), method, "/pubsub/events/?" + query, body=body, headers=headers
        )
        self.buffer = b""

    async def start(self) -> dict[str, Any]:
        await self.http.send_input({"type": "http.request", "body": self.http.body})
        return await self.http.receive_output()

    async def events(self, count: int) -> list[tuple[str | None, dict[str, Any]]]:
        """The next ``count`` events as ``(id, frame)``."""
        while self.buffer.count(b"\n\n") < count:
            chunk = await self.http.receive_output()
            assert chunk["type"] == "http.response.body" and chunk["more_body"] is True
            self.buffer += chunk["body"]
        parsed = []
        for _ in range(count):
            raw, self.buffer = self.buffer.split(b"\n\n", 1)
            fields = dict(line.split(": ", 1) for line in raw.decode().split("\n"))
            parsed.append((fields.get("id"), json.loads(fields["data"])))
        return parsed

    async def close(self) -> None:
        await self.http.send_input({"type": "http.disconnect"})
        await self.http.wait(1)


async def test_sse_streams_a_group_with_event_ids_and_recovers_from_last_event_id(fresh_layer):
    stream = EventStream("group=news")
    start = await stream.start()
    assert start["status"] == 200 and (b"content-type", b"text/event-stream") in start["headers"]
    ((_, subscribed),) = await stream.events(1)
    assert subscribed["type"] == "subscribed" and subscribed["offset"] == 0
    await publish("news", {"n": 1})
    ((event_id, frame),) = await stream.events(1)
    epoch = subscribed["epoch"]
    assert event_id == f"{epoch}:1" and frame == {
        "type": "message",
        "group": "news",
        "data": {"n": 1},
        "epoch": epoch,
        "offset": 1,
    }
    await stream.close()
    assert await fresh_layer.group_count("news") == 0
    await publish("news", {"n": 2})
    await publish("news", {"n": 3})
    again = EventStream("group=news", headers=[(b"last-event-id", event_id.encode())])
    await again.start()
    got = await again.events(3)
    assert [event_id for event_id, _ in got[:2]] == [f"{epoch}:2", f"{epoch}:3"]
    assert got[2][1]["recovered"] is True and got[2][1]["missed"] == 2
    await again.close()


async def test_sse_last_event_id_in_the_query_for_a_new_event_source():
    await publish("news", 1)
    stream = EventStream("group=news")
    await stream.start()
    ((_, subscribed),) = await stream.events(1)
    epoch = subscribed["epoch"]
    await stream.close()
    await publish("news", 2)
    resumed = EventStream(f"group=news&last_event_id={epoch}:1")
    await resumed.start()
    (_, message), (_, subscribed) = await resumed.events(2)
    assert message["data"] == 2 and subscribed["missed"] == 1
    await resumed.close()


async def test_sse_presence_is_joined_from_the_query_and_left_on_close(fresh_layer):
    stream = EventStream("group=room&presence=" + json.dumps({"name": "Sam"}))
    await stream.start()
    (_, subscribed), (_, members), (_, joined) = await stream.events(3)
    assert members["type"] == "presence" and members["members"][0]["info"] == {"name": "Sam"}
    assert joined["type"] == "join"
    await stream.close()
    assert await fresh_layer.presence("room") == []


async def test_sse_live_messages_during_the_replay_are_sent_once_in_order(history):
    real_history = history.group_history

    async def history_racing_a_publish(group, **kwargs):
        answer = await real_history(group, **kwargs)
        await publish(group, "during")  # after the answer: must come live, held back until the replay is out
        return answer

    await publish("news", "before")
    history.group_history = history_racing_a_publish
    epoch = (await real_history("news"))["epoch"]
    stream = EventStream(f"group=news&last_event_id={epoch}:0")
    await stream.start()
    got = await stream.events(3)
    history.group_history = real_history
    assert [frame.get("data", frame["type"]) for _, frame in got] == ["before", "subscribed", "during"]
    await stream.close()


async def test_sse_sends_pings_to_keep_the_stream_alive(monkeypatch):
    monkeypatch.setattr(GuardedStream, "heartbeat", 0.05)
    stream = EventStream("group=news")
    await stream.start()
    assert [frame["type"] for _, frame in await stream.events(2)] == ["subscribed", "ping"]
    await stream.close()


JSON = [(b"content-type", b"application/json")]


@pytest.mark.parametrize(
    "query, headers, status, code",
    [
        ("", [], 400, "bad_group"),
        ("group=bad%20group", [], 400, "bad_group"),
        ("group=secret", [], 403, "forbidden"),
        ("group=news", [(b"last-event-id", b"no-offset-here")], 400, "bad_since"),
        ("group=news&last_event_id=e:x", [], 400, "bad_since"),
        ("group=news&last_event_id=e:%C2%B2", [], 400, "bad_since"),  # a superscript two: a digit, not ASCII
        ("group=news&last_event_id=e:" + "9" * 5000, [], 400, "bad_since"),
        ("group=news&last_event_id=:5", [], 400, "bad_since"),
        ("group=news&presence={oops", [], 400, "bad_presence"),
    ],
)
async def test_sse_bad_requests_get_an_http_error_with_an_error_frame(query, headers, status, code):
    response = await HttpCommunicator(
        GuardedStream.as_asgi(), "GET", "/pubsub/events/?" + query, headers=headers
    ).get_response()
    assert response["status"] == status
    assert json.loads(response["body"])["code"] == code


async def test_sse_post_publishes_to_the_group():
    ws = await client()
    await subscribe(ws, "news")
    response = await HttpCommunicator(
        GuardedStream.as_asgi(),
        "POST",
        "/pubsub/events/",
        headers=JSON,
        body=json.dumps({"group": "news", "data": "by post"}).encode(),
    ).get_response()
    assert response["status"] == 202
    assert (await ws.receive_json_from())["data"] == "by post"
    await ws.disconnect()


@pytest.mark.parametrize(
    "method, headers, body, status, code",
    [
        ("POST", [(b"content-type", b"text/plain")], b'{"group": "news", "data": 1}', 415, "bad_content_type"),
        ("POST", [], b'{"group": "news", "data": 1}', 415, "bad_content_type"),
        ("POST", JSON, b"{oops", 400, "bad_json"),
        ("POST", JSON, b"[" * 5000 + b"]" * 5000, 400, "too_deep"),
        ("POST", JSON, b"\xff\xfe{", 400, "bad_json"),
        ("POST", JSON, b'{"group": "news"}', 400, "bad_message"),
        ("POST", JSON, b"[1]", 400, "bad_message"),
        ("POST", JSON, b'{"group": "no way", "data": 1}', 400, "bad_group"),
        ("POST", JSON, b'{"group": "readonly", "data": 1}', 403, "forbidden"),
        ("POST", JSON, b'{"group": "news", "data": "' + b"x" * 70_000 + b'"}', 413, "too_large"),
        ("PUT", JSON, b"{}", 405, "bad_method"),
    ],
)
async def test_sse_bad_posts_get_an_http_error_with_an_error_frame(method, headers, body, status, code):
    response = await HttpCommunicator(
        GuardedStream.as_asgi(), method, "/pubsub/events/", headers=headers, body=body
    ).get_response()
    assert response["status"] == status
    assert json.loads(response["body"])["code"] == code

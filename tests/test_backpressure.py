"""The outgoing buffer of a WebSocket consumer, against a fake server whose socket can stop being writable."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from hubbub import backpressure, metrics, tcp_user_timeout
from hubbub.consumer import AsyncConsumer
from hubbub.exceptions import StopConsumer
from hubbub.generic.websocket import AsyncWebsocketConsumer, WebsocketConsumer
from tests.waiting import eventually

SCOPE = {"type": "websocket", "path": "/", "subprotocols": []}


class FakeServer:
    """A server side whose ``send`` waits while ``writable`` is clear, as uvicorn's does."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue = asyncio.Queue()
        self.sent: list[dict] = []
        self.writable = asyncio.Event()
        self.writable.set()
        self.fail_with: Any = None

    async def receive(self) -> dict:
        return await self.inbox.get()

    async def send(self, message: dict) -> None:
        await self.writable.wait()
        if self.fail_with is not None:
            raise self.fail_with
        self.sent.append(message)

    def texts(self) -> list[str]:
        return [m["text"] for m in self.sent if m["type"] == "websocket.send"]

    def closes(self) -> list[dict]:
        return [m for m in self.sent if m["type"] == "websocket.close"]


class Pusher(AsyncWebsocketConsumer):
    """Sends ``n`` frames when told to; records its disconnect code."""

    codes: list[int] = []

    async def receive(self, text_data=None, bytes_data=None):
        count, _, size = text_data.partition(":")
        for n in range(int(count)):
            await self.send(text_data=str(n).rjust(int(size or 1), "x"))

    async def disconnect(self, code):
        self.codes.append(code)


async def start(app, server: FakeServer) -> asyncio.Task:
    task = asyncio.ensure_future(app(dict(SCOPE), server.receive, server.send))
    await server.inbox.put({"type": "websocket.connect"})
    deadline = asyncio.get_running_loop().time() + 5  # a sync consumer accepts from its thread
    while asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0)
        if server.sent:
            return task
        await asyncio.sleep(0.001)
    raise AssertionError("the consumer did not accept within 5 s")


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


@pytest.fixture(autouse=True)
def fresh_codes():
    Pusher.codes = []


async def test_fast_path_sends_in_place_without_a_task():
    server = FakeServer()
    task = await start(Pusher.as_asgi(), server)
    tasks_before = len(asyncio.all_tasks())
    await server.inbox.put({"type": "websocket.receive", "text": "200"})
    await settle()
    assert server.texts() == [str(n) for n in range(200)]
    assert len(asyncio.all_tasks()) == tasks_before
    await server.inbox.put({"type": "websocket.disconnect", "code": 1000})
    await task


async def test_stalled_socket_queues_without_blocking_the_handler_and_delivers_in_order_later():
    server = FakeServer()
    task = await start(Pusher.as_asgi(), server)
    server.writable.clear()
    await server.inbox.put({"type": "websocket.receive", "text": "50"})
    await settle()  # the handler ran to its end although nothing could be written
    await server.inbox.put({"type": "websocket.receive", "text": "3"})
    await settle()
    assert server.texts() == []
    server.writable.set()
    await settle()
    assert server.texts() == [str(n) for n in range(50)] + ["0", "1", "2"]
    await server.inbox.put({"type": "websocket.disconnect", "code": 1000})
    await task
    assert Pusher.codes == [1000]


async def test_overflow_under_close_policy_disconnects_with_1013_and_closes_after_what_was_in_flight():
    server = FakeServer()
    drops, closes = metrics.drops.get("slow_client"), metrics.slow_client_closes.value
    task = await start(Pusher.as_asgi(outbox_max_messages=5), server)
    server.writable.clear()
    await server.inbox.put({"type": "websocket.receive", "text": "20"})
    await settle()
    assert Pusher.codes == [1013], "the consumer ended as if the client had left"
    assert not task.done(), "it waits for the close frame to leave"
    server.writable.set()
    await asyncio.wait_for(task, 1)
    assert server.texts() == ["0"]  # the frame that was being written when the socket stalled
    assert server.closes() == [{"type": "websocket.close", "code": 1013, "reason": "try again later"}]
    # 5 queued frames discarded at the overflow, then the 14 sent after it
    assert metrics.drops.get("slow_client") - drops == 19
    assert metrics.slow_client_closes.value - closes == 1


async def test_nothing_is_sent_after_the_1013_close_even_from_disconnect():
    class Chatty(Pusher):
        async def disconnect(self, code):
            await asyncio.sleep(0.05)  # by now the client has read again and the close is out
            await self.send(text_data="bye")

    server = FakeServer()
    task = await start(Chatty.as_asgi(outbox_max_messages=1), server)
    server.writable.clear()
    await server.inbox.put({"type": "websocket.receive", "text": "3"})
    await settle()
    server.writable.set()
    await asyncio.wait_for(task, 1)
    assert server.sent[-1]["type"] == "websocket.close"
    assert "bye" not in server.texts()


async def test_close_policy_leaves_the_consumers_groups(fresh_layer):
    class Member(Pusher):
        groups = ["room"]

    server = FakeServer()
    task = await start(Member.as_asgi(outbox_max_messages=2), server)
    assert await fresh_layer.group_count("room") == 1
    server.writable.clear()
    await server.inbox.put({"type": "websocket.receive", "text": "10"})
    await settle()
    assert await fresh_layer.group_count("room") == 0
    server.writable.set()
    await asyncio.wait_for(task, 1)


async def test_drop_oldest_keeps_the_newest_frames_and_counts_the_rest():
    server = FakeServer()
    drops = metrics.drops.get("slow_client")
    app = Pusher.as_asgi(outbox_max_messages=3, outbox_policy="drop_oldest")
    task = await start(app, server)
    server.writable.clear()
    await server.inbox.put({"type": "websocket.receive", "text": "10"})
    await settle()
    server.writable.set()
    await settle()
    assert server.texts() == ["0", "7", "8", "9"]
    assert metrics.drops.get("slow_client") - drops == 6
    assert Pusher.codes == []
    await server.inbox.put({"type": "websocket.receive", "text": "2"})
    await settle()
    assert server.texts()[-2:] == ["0", "1"], "the connection is served normally again"
    await server.inbox.put({"type": "websocket.disconnect", "code": 1000})
    await task


async def test_byte_bound_applies_as_well_as_the_message_bound():
    server = FakeServer()
    app = Pusher.as_asgi(outbox_max_bytes=10, outbox_policy="drop_oldest")
    task = await start(app, server)
    server.writable.clear()
    await server.inbox.put({"type": "websocket.receive", "text": "6:4"})  # six 4-character frames
    await settle()
    server.writable.set()
    await settle()
    # "xxx0" was in flight; at most 10 characters fit behind it: the last two frames
    assert server.texts() == ["xxx0", "xxx4", "xxx5"]
    await server.inbox.put({"type": "websocket.disconnect", "code": 1000})
    await task


async def test_a_frame_larger_than_the_whole_byte_budget_is_dropped_not_queued():
    outbox = backpressure.Outbox(FakeServer().send, 10, 4, "drop_oldest", lambda: None, lambda exc: None)
    outbox.writer = asyncio.get_running_loop().create_future()  # as if a send were in flight
    await outbox.send({"type": "websocket.send", "text": "ok"})
    await outbox.send({"type": "websocket.send", "text": "far too long"})
    assert [m["text"] for m in outbox.queue] == ["ok"]
    assert (outbox.dropped, outbox.bytes) == (1, 2)


async def test_close_and_other_non_frame_messages_are_never_dropped():
    outbox = backpressure.Outbox(FakeServer().send, 2, 100, "drop_oldest", lambda: None, lambda exc: None)
    outbox.writer = asyncio.get_running_loop().create_future()
    await outbox.send({"type": "websocket.send", "text": "a"})
    await outbox.send({"type": "websocket.close", "code": 1000})
    for text in "bcd":
        await outbox.send({"type": "websocket.send", "text": text})
    assert [m.get("text", m["type"]) for m in outbox.queue] == ["websocket.close", "d"]
    assert outbox.dropped == 3


@pytest.mark.django_db  # sync handlers run inside database_sync_to_async, which checks the connection
async def test_sync_consumer_is_buffered_too_and_its_thread_is_not_held():
    class SyncPusher(WebsocketConsumer):
        def receive(self, text_data=None, bytes_data=None):
            for n in range(int(text_data)):
                self.send(text_data=str(n))
            self.send(text_data="handler done")

    server = FakeServer()
    task = await start(SyncPusher.as_asgi(), server)
    server.writable.clear()
    await server.inbox.put({"type": "websocket.receive", "text": "20"})
    await asyncio.sleep(0.3)
    assert server.texts() == []
    server.writable.set()
    await eventually(lambda: len(server.texts()) == 21, what="the buffered frames are written")
    assert server.texts() == [str(n) for n in range(20)] + ["handler done"]
    await server.inbox.put({"type": "websocket.disconnect", "code": 1000})
    await asyncio.wait_for(task, 2)


async def stall_then_fail(exc: BaseException, consumer: type = Pusher):
    """A consumer with five frames queued behind a stalled socket, whose server then raises ``exc``."""
    server = FakeServer()
    task = await start(consumer.as_asgi(), server)
    server.writable.clear()
    await server.inbox.put({"type": "websocket.receive", "text": "5"})
    await settle()
    server.fail_with = exc
    server.writable.set()
    return server, task


@pytest.mark.django_db
async def test_sync_consumer_overflow_under_close_policy_disconnects_it_with_1013():
    codes: list[int] = []

    class SyncFlood(WebsocketConsumer):
        def receive(self, text_data=None, bytes_data=None):
            for n in range(10):
                self.send(text_data=str(n))

        def disconnect(self, code):
            codes.append(code)

    server = FakeServer()
    task = await start(SyncFlood.as_asgi(outbox_max_messages=2), server)
    server.writable.clear()
    await server.inbox.put({"type": "websocket.receive", "text": "go"})
    for _ in range(100):
        await asyncio.sleep(0.01)
        if codes:
            break
    assert codes == [1013]
    server.writable.set()
    await asyncio.wait_for(task, 2)
    assert server.texts() == ["0"] and server.closes()[0]["code"] == 1013


async def test_server_error_while_draining_ends_the_consumer_with_that_error():
    _, task = await stall_then_fail(RuntimeError("server refused the message"))
    with pytest.raises(RuntimeError, match="server refused"):
        await asyncio.wait_for(task, 1)


async def test_client_gone_while_draining_is_not_an_error():
    server, task = await stall_then_fail(ConnectionResetError("peer went away"))
    await settle()
    await server.inbox.put({"type": "websocket.disconnect", "code": 1006})
    await asyncio.wait_for(task, 1)
    assert Pusher.codes == [1006]


async def test_a_send_finding_the_client_gone_ends_the_consumer_as_a_disconnect(fresh_layer):
    """The server's send raises OSError and never sends websocket.disconnect (Granian need not): disconnect()
    runs once with 1006, the groups are left and the consumer ends without an error."""

    class Member(Pusher):
        groups = ["room"]

    server = FakeServer()
    task = await start(Member.as_asgi(), server)
    assert await fresh_layer.group_count("room") == 1
    server.fail_with = ConnectionResetError("peer went away")  # the fast path: the first step raises
    await server.inbox.put({"type": "websocket.receive", "text": "3"})
    await asyncio.wait_for(task, 2)
    assert task.exception() is None
    assert Pusher.codes == [1006]
    assert await fresh_layer.group_count("room") == 0


async def test_a_stalled_send_failing_later_also_ends_the_consumer_as_a_disconnect(fresh_layer):
    """The writer's pending send raises OSError once the client is cut off: the same disconnect, without receive."""

    class Member(Pusher):
        groups = ["room"]

    server, task = await stall_then_fail(ConnectionResetError("peer went away"), Member)
    await asyncio.wait_for(task, 2)
    assert task.exception() is None
    assert Pusher.codes == [1006]
    assert await fresh_layer.group_count("room") == 0


async def test_frames_queued_when_the_consumer_ends_get_a_bounded_time_to_leave(monkeypatch):
    class SendThenStop(AsyncWebsocketConsumer):
        async def receive(self, text_data=None, bytes_data=None):
            await self.send(text_data="last words")
            await self.send(text_data="really")
            raise StopConsumer()

    server = FakeServer()
    task = await start(SendThenStop.as_asgi(), server)
    server.writable.clear()
    await server.inbox.put({"type": "websocket.receive", "text": "go"})
    await settle()
    assert not task.done()
    server.writable.set()
    await asyncio.wait_for(task, 1)
    assert server.texts() == ["last words", "really"]

    monkeypatch.setattr(backpressure, "FLUSH_TIMEOUT", 0.05)
    monkeypatch.setattr(tcp_user_timeout, "installed", None)  # no kernel cut-off to wait for
    server = FakeServer()
    task = await start(SendThenStop.as_asgi(), server)
    server.writable.clear()
    await server.inbox.put({"type": "websocket.receive", "text": "go"})
    await asyncio.wait_for(task, 1)  # a client that never reads does not keep the consumer forever
    assert server.texts() == []


async def test_http_consumers_have_no_outbox():
    class Plain(AsyncConsumer):
        async def http_request(self, message):
            await self.send({"type": "http.response.start", "status": 204, "headers": []})
            await self.send({"type": "http.response.body", "body": b""})
            raise StopConsumer()

    sent: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": b""}

    async def send(message):
        sent.append(message)

    consumer = Plain()
    await consumer({"type": "http", "path": "/"}, receive, send)
    assert consumer.outbox is None
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]


@pytest.mark.parametrize(
    "settings, error, words",
    [
        ({"outbox_policy": "drop_newest"}, ValueError, "outbox_policy must be one of"),
        ({"outbox_max_messages": 0}, ValueError, "outbox_max_messages must be at least 1"),
        ({"outbox_max_bytes": -5}, ValueError, "outbox_max_bytes must be at least 1"),
        ({"outbox_max_messages": "100"}, TypeError, "outbox_max_messages must be an int"),
        ({"outbox_max_bytes": 1.5}, TypeError, "outbox_max_bytes must be an int"),
        ({"outbox_max_messages": True}, TypeError, "outbox_max_messages must be an int"),
    ],
)
def test_bad_outbox_settings_fail_at_as_asgi_naming_the_consumer(settings, error, words):
    with pytest.raises(error, match=words) as raised:
        Pusher.as_asgi(**settings)
    assert "Pusher." in str(raised.value)


def test_bad_outbox_class_attribute_fails_at_as_asgi():
    class Misconfigured(AsyncWebsocketConsumer):
        outbox_policy = "block"

    with pytest.raises(ValueError, match="Misconfigured.outbox_policy"):
        Misconfigured.as_asgi()


def outbox_on(server: FakeServer, scope=None) -> backpressure.Outbox:
    return backpressure.Outbox(server.send, 100, 1 << 20, "close", lambda: None, lambda exc: None, scope)


async def test_a_connection_lost_after_a_long_stall_is_counted_and_logged_once(monkeypatch, caplog):
    monkeypatch.setattr(backpressure, "STALL_REPORT_AFTER", 0.05)
    monkeypatch.setattr(
        backpressure,
        "_stalled_log",
        backpressure.RateLimitedLog(
            backpressure.logging.getLogger("hubbub.backpressure"), backpressure.logging.WARNING, 10.0
        ),
    )
    before = metrics.stalled_clients.value
    server = FakeServer()
    server.writable.clear()
    outbox = outbox_on(server, {"type": "websocket", "path": "/ws/feed/", "client": ("10.0.0.7", 4242)})
    for n in range(3):
        await outbox.send({"type": "websocket.send", "text": str(n)})
    await asyncio.sleep(0.1)
    server.fail_with = OSError("connection lost")  # what the server raises once the kernel cut the client off
    server.writable.set()
    await outbox.flush()
    assert metrics.stalled_clients.value == before + 1
    lines = [r.getMessage() for r in caplog.records if r.name == "hubbub.backpressure"]
    assert len(lines) == 1
    assert lines[0].startswith("Stalled WebSocket client 10.0.0.7:4242 on /ws/feed/: the connection was lost")
    assert "3 frame(s) not delivered" in lines[0]
    assert caplog.records[-1].exc_info is None


async def test_a_client_leaving_during_a_short_burst_is_not_a_stalled_client():
    before = metrics.stalled_clients.value
    server = FakeServer()
    server.writable.clear()
    outbox = outbox_on(server)
    await outbox.send({"type": "websocket.send", "text": "x"})
    server.fail_with = OSError("connection lost")
    server.writable.set()
    await outbox.flush()
    assert metrics.stalled_clients.value == before


async def test_frames_abandoned_at_the_flush_timeout_are_counted_as_a_stalled_client(monkeypatch, caplog):
    monkeypatch.setattr(backpressure, "FLUSH_TIMEOUT", 0.1)
    monkeypatch.setattr(tcp_user_timeout, "installed", None)
    before = metrics.stalled_clients.value
    server = FakeServer()
    server.writable.clear()
    outbox = outbox_on(server, {"type": "websocket", "path": "/ws/slow/", "client": ("10.0.0.8", 1)})
    await outbox.send({"type": "websocket.close", "code": 1013})
    await outbox.flush()
    assert metrics.stalled_clients.value == before + 1
    assert any("on /ws/slow/: its frames were abandoned after 0.1 s" in r.getMessage() for r in caplog.records)


async def test_going_away_closes_every_open_websocket_with_1001_and_discards_later_frames():
    fast, stalled, done = FakeServer(), FakeServer(), FakeServer()
    stalled.writable.clear()
    fast_box, stalled_box, done_box = outbox_on(fast), outbox_on(stalled), outbox_on(done)
    await stalled_box.send({"type": "websocket.send", "text": "stuck"})
    await done_box.send({"type": "websocket.close", "code": 1000})
    told = await backpressure.going_away(timeout=1.0)
    assert told >= 2  # other tests' outboxes may still be alive in this process
    assert fast.closes() == [{"type": "websocket.close", "code": 1001, "reason": "server shutting down"}]
    assert done.closes() == [{"type": "websocket.close", "code": 1000}], "a connection already closed is left alone"
    assert [m["type"] for m in stalled_box.queue] == ["websocket.close"], "queued behind the stuck frame"
    await fast_box.send({"type": "websocket.send", "text": "too late"})
    assert fast.texts() == [] and fast_box.dropped == 1
    stalled.writable.set()
    await stalled_box.flush()
    assert stalled.texts() == ["stuck"] and stalled.closes()[0]["code"] == 1001


def test_an_ended_consumer_waits_past_the_kernel_cut_off_so_a_late_reader_still_gets_its_close(monkeypatch):
    monkeypatch.setattr(tcp_user_timeout, "installed", 30.0)
    assert backpressure.flush_timeout() == backpressure.FLUSH_TIMEOUT + 30.0
    monkeypatch.setattr(tcp_user_timeout, "installed", None)
    assert backpressure.flush_timeout() == backpressure.FLUSH_TIMEOUT


class FutureServer(FakeServer):
    """A server whose ``send`` is a plain function returning an ``asyncio.Future`` (as Granian returns
    an awaitable that is not a coroutine): done at once while writable, else when writable again."""

    def send(self, message: dict) -> asyncio.Future:  # type: ignore[override]
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        if self.writable.is_set():
            self.sent.append(message)
            done.set_result(None)
            return done

        async def later() -> None:
            await self.writable.wait()
            self.sent.append(message)
            done.set_result(None)

        loop.create_task(later())
        return done


class _AwaitWhenWritable:
    """An awaitable written as a class with a generator ``__await__``, neither coroutine nor future."""

    def __init__(self, server: FakeServer, message: dict):
        self.server, self.message = server, message

    def __await__(self):
        yield from self.server.writable.wait().__await__()
        self.server.sent.append(self.message)


class AwaitableServer(FakeServer):
    def send(self, message: dict) -> _AwaitWhenWritable:  # type: ignore[override]
        return _AwaitWhenWritable(self, message)


@pytest.mark.parametrize("server_class", [FutureServer, AwaitableServer])
async def test_a_send_returning_any_awaitable_is_written_in_place_or_queued_in_order(server_class):
    """ASGI only promises an awaitable from ``send``: a future or a custom ``__await__`` object works
    like a coroutine, sent in place while writable and queued in order behind a stalled one."""
    server = server_class()
    outbox = outbox_on(server)
    await outbox.send({"type": "websocket.send", "text": "now"})
    assert server.texts() == ["now"] and outbox.writer is None, "a writable socket takes it in place"
    server.writable.clear()
    for n in range(3):
        await outbox.send({"type": "websocket.send", "text": str(n)})
    assert server.texts() == ["now"] and outbox.writer is not None
    server.writable.set()
    await outbox.flush()
    assert server.texts() == ["now", "0", "1", "2"]
    assert outbox.writer is None and outbox.dropped == 0


async def test_a_consumer_runs_on_a_server_whose_send_returns_a_future():
    """A whole WebSocket consumer (accept, frames, close) on a server whose ``send`` returns futures."""
    server = FutureServer()
    task = await start(Pusher.as_asgi(), server)
    await server.inbox.put({"type": "websocket.receive", "text": "3"})
    await server.inbox.put({"type": "websocket.disconnect", "code": 1000})
    await asyncio.wait_for(task, 5)
    assert server.sent[0]["type"] == "websocket.accept"
    assert server.texts() == ["0", "1", "2"]


async def test_a_send_returning_no_awaitable_is_a_clear_type_error():
    outbox = backpressure.Outbox(lambda message: None, 10, 100, "close", lambda: None, lambda exc: None)
    with pytest.raises(TypeError, match="the server's send\\(\\) returned NoneType, not an awaitable"):
        await outbox.send({"type": "websocket.send", "text": "x"})


async def test_an_outbox_holds_a_queue_only_while_a_send_is_stalled():
    """Idle connections pay no queue: it is made when a send stalls and dropped once everything has left."""
    server = FakeServer()
    outbox = backpressure.Outbox(server.send, 10, 100, "close", lambda: None, lambda exc: None)
    await outbox.send({"type": "websocket.send", "text": "a"})
    assert outbox.queue is None and server.texts() == ["a"]
    server.writable.clear()
    for text in "bcd":
        await outbox.send({"type": "websocket.send", "text": text})
    assert [m["text"] for m in outbox.queue or ()] == ["c", "d"]  # "b" is the stalled send
    server.writable.set()
    await eventually(lambda: outbox.writer is None, what="the writer drained the queue")
    assert outbox.queue is None and server.texts() == ["a", "b", "c", "d"]

"""A consumer's connection: WebSocket state machine, feature hooks, task group, layers counting group sends."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from hubbub import metrics
from hubbub.connection import ConnectionHooks, add_hooks, remove_hooks
from hubbub.consumer import AsyncConsumer
from hubbub.exceptions import StopConsumer
from hubbub.layers import InMemoryChannelLayer, get_channel_layer
from hubbub.websocket_state import WebSocketState

SCOPE = {"type": "websocket", "path": "/ws/raw/", "subprotocols": []}


def run(state: WebSocketState, *messages: dict[str, Any]) -> WebSocketState:
    for message in messages:
        state = state.after(message)
    return state


def test_websocket_state_goes_from_handshake_through_frames_to_close() -> None:
    state = WebSocketState.CONNECTING.after({"type": "websocket.accept"})
    assert state is WebSocketState.OPEN
    assert (
        run(state, {"type": "websocket.send", "text": "a"}, {"type": "websocket.send", "bytes": b"b"})
        is WebSocketState.OPEN
    )
    closed = state.after({"type": "websocket.close", "code": 1000})
    assert closed is WebSocketState.CLOSED
    assert (
        run(closed, {"type": "websocket.send", "text": "late"}, {"type": "websocket.close"}) is WebSocketState.CLOSED
    ), "after a close, frames go on to the outbox or server, which discard or refuse them"


def test_websocket_refusal_and_denial_response_end_the_handshake() -> None:
    refused = WebSocketState.CONNECTING.after({"type": "websocket.close"})
    assert refused is WebSocketState.REFUSED
    assert refused.after({"type": "websocket.close", "code": 1008}) is WebSocketState.REFUSED
    responding = WebSocketState.CONNECTING.after({"type": "websocket.http.response.start", "status": 403})
    assert responding is WebSocketState.RESPONDING
    assert responding.after({"type": "websocket.http.response.body", "body": b"no", "more_body": True}) is responding
    assert responding.after({"type": "websocket.http.response.body", "body": b""}) is WebSocketState.CLOSED


@pytest.mark.parametrize(
    "state, message, expected",
    [
        (
            WebSocketState.CONNECTING,
            "websocket.send",
            "'websocket.accept', 'websocket.close', 'websocket.http.response.start'",
        ),
        (WebSocketState.OPEN, "websocket.accept", "'websocket.send', 'websocket.close'"),
        (WebSocketState.CLOSED, "websocket.accept", "'websocket.send', 'websocket.close'"),
        (WebSocketState.REFUSED, "websocket.accept", "'websocket.send', 'websocket.close'"),
        (WebSocketState.RESPONDING, "websocket.send", "'websocket.http.response.body'"),
        (WebSocketState.OPEN, "http.response.start", "'websocket.send', 'websocket.close'"),
    ],
)
def test_an_illegal_websocket_message_raises_naming_the_expected_types(
    state: WebSocketState, message: str, expected: str
) -> None:
    with pytest.raises(
        RuntimeError, match=f"WebSocket is {state.value}: expected ASGI message {expected}, but got '{message}'"
    ):
        state.after({"type": message})


class Server:
    """The server side of one connection: a queue in, a list out."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.sent: list[dict[str, Any]] = []

    async def receive(self) -> dict[str, Any]:
        return await self.inbox.get()

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)


class RawEarlyFrame(AsyncConsumer):
    """Speaks raw ASGI on the bare consumer and sends a frame before accepting."""

    async def websocket_connect(self, message: dict[str, Any]) -> None:
        await self.send({"type": "websocket.send", "text": "too early"})


class RawFailing(AsyncConsumer):
    """Accepts by hand, then breaks on the first frame."""

    async def websocket_connect(self, message: dict[str, Any]) -> None:
        await self.send({"type": "websocket.accept"})

    async def websocket_receive(self, message: dict[str, Any]) -> None:
        raise KeyError("broken handler")

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        raise StopConsumer()


async def test_a_raw_consumer_sending_a_frame_before_accept_fails_before_the_server_sees_it() -> None:
    server = Server()
    await server.inbox.put({"type": "websocket.connect"})
    with pytest.raises(RuntimeError, match="expected ASGI message 'websocket.accept'.*but got 'websocket.send'"):
        await asyncio.wait_for(RawEarlyFrame.as_asgi()(dict(SCOPE), server.receive, server.send), 5)
    assert server.sent == []


async def test_a_raw_consumer_that_accepted_closes_with_1011_when_a_handler_raises() -> None:
    server = Server()
    await server.inbox.put({"type": "websocket.connect"})
    await server.inbox.put({"type": "websocket.receive", "text": "boom"})
    with pytest.raises(KeyError, match="broken handler"):
        await asyncio.wait_for(RawFailing.as_asgi()(dict(SCOPE), server.receive, server.send), 5)
    assert server.sent == [{"type": "websocket.accept"}, {"type": "websocket.close", "code": 1011}]


async def test_feature_hooks_see_each_connection_open_its_messages_and_its_close() -> None:
    seen: list[Any] = []

    async def closed(consumer: Any) -> None:
        seen.append(("closed", type(consumer).__name__))

    hooks = ConnectionHooks(
        opened=lambda consumer: seen.append(("opened", consumer.scope["path"])),
        closed=closed,
        message_in=lambda kind: seen.append(("in", kind)),
    )
    add_hooks(hooks)
    try:
        server = Server()
        for message in ({"type": "websocket.connect"}, {"type": "websocket.disconnect", "code": 1000}):
            await server.inbox.put(message)
        await asyncio.wait_for(RawFailing.as_asgi()(dict(SCOPE), server.receive, server.send), 5)
    finally:
        remove_hooks(hooks)
    assert seen == [
        ("opened", "/ws/raw/"),
        ("in", "websocket.connect"),
        ("in", "websocket.disconnect"),
        ("closed", "RawFailing"),
    ]


class Grouped(AsyncConsumer):
    async def test_start(self, message: dict[str, Any]) -> None:
        await self.send({"type": "test.started", "channel": self.channel_name})

    async def test_fail(self, message: dict[str, Any]) -> None:
        raise LookupError("group handler broke")


async def test_an_error_in_the_channel_listener_ends_the_consumer_and_leaves_no_task_behind() -> None:
    """Structured concurrency: the listener's error cancels the receive loop, is raised as itself, and the
    consumer's tasks are all gone when its application returns."""
    server = Server()
    before = asyncio.all_tasks()
    app = asyncio.ensure_future(Grouped.as_asgi()({"type": "test"}, server.receive, server.send))
    await server.inbox.put({"type": "test.start"})
    while not server.sent:
        await asyncio.sleep(0.001)
    layer = get_channel_layer()
    assert layer is not None
    await layer.send(server.sent[0]["channel"], {"type": "test.fail"})
    with pytest.raises(LookupError, match="group handler broke"):
        await asyncio.wait_for(app, 5)
    assert asyncio.all_tasks() - before - {asyncio.current_task()} == set()


async def test_the_in_memory_layer_counts_its_group_sends_but_not_the_metrics_probe() -> None:
    layer = InMemoryChannelLayer()
    before = metrics.group_sends.get("counted")
    await layer.group_send("counted", {"type": "x"})
    await layer.group_send("counted", {"type": "x"})
    assert metrics.group_sends.get("counted") == before + 2
    total = sum(metrics.group_sends.counts.values())
    assert await metrics.probe_layer(layer) is not None
    assert sum(metrics.group_sends.counts.values()) == total


@pytest.mark.parametrize("layer_class", ["RedisChannelLayer", "RedisPubSubChannelLayer"])
async def test_the_redis_layers_count_their_group_sends(layer_class: str, redis_url: str, redis_prefix: str) -> None:
    from hubbub.layers import redis as redis_layers
    from tests.test_layers_redis import layer_factory

    async with layer_factory(getattr(redis_layers, layer_class), redis_url, redis_prefix) as make:
        layer = make()
        group = f"counted-{layer_class}-{redis_prefix}"
        await layer.group_send(group, {"type": "x"})
        await layer.group_send(group, {"type": "x"})
        assert metrics.group_sends.get(group) == 2

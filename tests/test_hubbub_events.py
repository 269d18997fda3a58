"""hubbub's own group events never close a consumer that did not ask for them (issue 15 item 4).

A group can hold the tutorial's ``ChatConsumer`` and a hubbub.js page (``PubSubConsumer``
with presence) at once. Presence joins and leaves and pub/sub messages are skipped by a
consumer without a handler for them; the pub/sub endpoints skip (and log once) the
application's own types; an application's own unhandled type still raises, as in Channels.
Run on the in-memory layer and on both Redis layers, the Redis ones with two layer
instances sharing a prefix: two processes, as far as Redis can tell.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.urls import path

from hubbub.consumer import HUBBUB_EVENT_TYPES
from hubbub.generic.pubsub import PubSubConsumer, PubSubEventStream
from hubbub.generic.websocket import AsyncWebsocketConsumer, WebsocketConsumer
from hubbub.layers import InMemoryChannelLayer, channel_layers
from hubbub.routing import URLRouter
from hubbub.testing import HttpCommunicator, WebsocketCommunicator
from tests.servers import ROOT

pytestmark = pytest.mark.timeout(30)

WAIT = 5  # seconds a reply may take on a loaded machine; waits end as soon as it comes


class ChatConsumer(AsyncWebsocketConsumer):
    """The tutorial's room consumer (docs/tutorial.md, step 4): no presence, no pub/sub."""

    async def connect(self):
        self.group = "chat_" + self.scope["url_route"]["kwargs"]["room_name"]
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code):
        await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None):
        message = json.loads(text_data)["message"]
        await self.channel_layer.group_send(self.group, {"type": "chat.message", "message": message})

    async def chat_message(self, event):
        await self.send(text_data=json.dumps({"message": event["message"]}))


class SyncChatConsumer(WebsocketConsumer):
    """The same room, written synchronously (as Channels' own tutorial starts)."""

    def connect(self):
        self.group = "chat_" + self.scope["url_route"]["kwargs"]["room_name"]
        async_to_sync(self.channel_layer.group_add)(self.group, self.channel_name)
        self.accept()

    def disconnect(self, code):
        async_to_sync(self.channel_layer.group_discard)(self.group, self.channel_name)

    def receive(self, text_data=None, bytes_data=None):
        async_to_sync(self.channel_layer.group_send)(self.group, {"type": "chat.message", "message": text_data})

    def chat_message(self, event):
        self.send(text_data=event["message"])


class PageOnOtherProcess(PubSubConsumer):
    """The endpoint hubbub.js talks to, on the second layer instance (the "other process")."""

    channel_layer_alias = "other"


class StreamOnOtherProcess(PubSubEventStream):
    channel_layer_alias = "other"


@pytest.fixture(params=["memory", "redis", "redis-pubsub"])
async def two_processes(request: Any) -> AsyncIterator[Any]:
    """Layers ``default`` and ``other``: one in-memory layer twice, or two Redis layers on one prefix."""
    if request.param == "memory":
        first = second = InMemoryChannelLayer()
    else:
        from hubbub.layers.redis import RedisChannelLayer, RedisPubSubChannelLayer

        layer_class = RedisChannelLayer if request.param == "redis" else RedisPubSubChannelLayer
        url, prefix = request.getfixturevalue("redis_url"), request.getfixturevalue("redis_prefix")
        first, second = (layer_class(hosts=[url], prefix=prefix) for _ in range(2))
    old = {alias: channel_layers.set(alias, layer) for alias, layer in (("default", first), ("other", second))}
    try:
        yield first
    finally:
        for alias, layer in old.items():
            if layer is None:
                channel_layers.backends.pop(alias, None)
            else:
                channel_layers.set(alias, layer)
        if first is not second:
            await first.flush()
            for layer in (first, second):
                await layer.close_pools()


async def chat_client(consumer: type = ChatConsumer, room: str = "lobby") -> WebsocketCommunicator:
    app = URLRouter([path("ws/chat/<str:room_name>/", consumer.as_asgi())])
    client = WebsocketCommunicator(app, f"/ws/chat/{room}/")
    assert (await client.connect(timeout=WAIT))[0]
    return client


async def page_client() -> WebsocketCommunicator:
    client = WebsocketCommunicator(PageOnOtherProcess.as_asgi(), "/ws/pubsub/")
    assert (await client.connect(timeout=WAIT))[0]
    return client


async def frames_until(client: WebsocketCommunicator, kind: str) -> list[dict[str, Any]]:
    """The frames a pub/sub client gets up to and including the first of type ``kind``."""
    got = [await client.receive_json_from(timeout=WAIT)]
    while got[-1]["type"] != kind:
        got.append(await client.receive_json_from(timeout=WAIT))
    return got


async def test_the_skipped_types_are_hubbubs_presence_and_pubsub_events_only():
    assert {"presence.join", "presence.leave", "pubsub.message"} == HUBBUB_EVENT_TYPES


async def test_a_presence_page_in_the_group_leaves_chat_consumers_open_and_chatting(two_processes, caplog):
    """A hubbub.js page joins ``chat_lobby`` with presence, publishes and leaves; the chat goes on."""
    caplog.set_level(logging.WARNING, logger="hubbub.pubsub")
    ann, bob = await chat_client(), await chat_client()
    page = await page_client()
    await page.send_json_to({"type": "subscribe", "group": "chat_lobby", "presence": {"name": "Pat"}})
    assert [f["type"] for f in await frames_until(page, "join")] == ["subscribed", "presence", "join"]
    await page.send_json_to({"type": "publish", "group": "chat_lobby", "data": "hello from the page"})
    assert (await page.receive_json_from(timeout=WAIT))["data"] == "hello from the page"

    await ann.send_json_to({"message": "still here?"})  # after the join and the pub/sub message in ann's channel
    for client in (ann, bob):
        assert await client.receive_json_from(timeout=WAIT) == {"message": "still here?"}
    await page.send_json_to({"type": "publish", "group": "chat_lobby", "data": "after the chat"})
    assert (await page.receive_json_from(timeout=WAIT))["data"] == "after the chat"  # it skipped chat.message

    await page.send_json_to({"type": "unsubscribe", "group": "chat_lobby"})  # a presence.leave to the group
    assert (await page.receive_json_from(timeout=WAIT))["type"] == "unsubscribed"
    await bob.send_json_to({"message": "yes"})
    for client in (ann, bob):
        assert await client.receive_json_from(timeout=WAIT) == {"message": "yes"}
    for client in (ann, bob, page):
        assert await client.receive_nothing(0.1)
        await client.disconnect()  # re-raises an error the consumer ended with: there is none
    assert await two_processes.group_count("chat_lobby") == 0


async def test_a_sync_consumer_skips_presence_events_too(two_processes):
    ann = await chat_client(SyncChatConsumer)
    page = await page_client()
    await page.send_json_to({"type": "subscribe", "group": "chat_lobby", "presence": None})
    await frames_until(page, "join")
    await ann.send_to(text_data="hi")
    assert await ann.receive_from(timeout=WAIT) == "hi"
    await page.disconnect()  # its presence.leave reaches ann
    await ann.send_to(text_data="alone")
    assert await ann.receive_from(timeout=WAIT) == "alone"
    await ann.disconnect()


async def test_the_pubsub_endpoint_logs_an_unknown_group_type_once_and_stays_open(two_processes, caplog):
    """The tutorial's ``chat.message`` to a group a page subscribes to: one log line per type, no close."""
    caplog.set_level(logging.WARNING, logger="hubbub.pubsub")
    kind = f"chat.message{uuid.uuid4().hex[:8]}"  # logged once per process: a type no other test used
    page = await page_client()
    await page.send_json_to({"type": "subscribe", "group": "chat_room"})
    await frames_until(page, "subscribed")
    for n in range(3):
        await two_processes.group_send("chat_room", {"type": kind, "message": n})
    await page.send_json_to({"type": "publish", "group": "chat_room", "data": "mine"})
    assert (await page.receive_json_from(timeout=WAIT))["data"] == "mine"
    lines = [r for r in caplog.records if r.name == "hubbub.pubsub"]
    assert len(lines) == 1 and kind in lines[0].getMessage() and "PageOnOtherProcess" in lines[0].getMessage()
    assert lines[0].exc_info is None
    await page.disconnect()


async def test_the_sse_stream_skips_an_unknown_group_type_and_keeps_streaming(two_processes):
    stream = HttpCommunicator(StreamOnOtherProcess.as_asgi(), "GET", "/pubsub/events/?group=chat_lobby")
    await stream.send_input({"type": "http.request", "body": b""})
    assert (await stream.receive_output(timeout=WAIT))["status"] == 200
    assert b'"subscribed"' in (await stream.receive_output(timeout=WAIT))["body"]
    await two_processes.group_send("chat_lobby", {"type": "chat.message", "message": "not for SSE"})
    await two_processes.group_send("chat_lobby", {"type": "pubsub.message", "group": "chat_lobby", "data": "for SSE"})
    body = (await stream.receive_output(timeout=WAIT))["body"]
    assert b'"for SSE"' in body and b"not for SSE" not in body
    await stream.send_input({"type": "http.disconnect"})
    await stream.wait(WAIT)


async def test_an_applications_own_unhandled_type_still_raises_value_error(two_processes):
    """Channels' dispatch for the application's types: a typo'd type ends the consumer with ValueError."""
    ann = await chat_client()
    await two_processes.group_send("chat_lobby", {"type": "chat.mesage", "message": "typo"})
    with pytest.raises(ValueError, match="No handler for message type 'chat.mesage' on ChatConsumer"):
        await ann.receive_from(timeout=WAIT)


def test_the_features_guide_uses_no_group_of_the_tutorial():
    """docs/features.md's pub/sub and presence examples, pasted into the tutorial's site, share no group with it."""
    features = (ROOT / "docs" / "features.md").read_text()
    assert "chat_" not in features

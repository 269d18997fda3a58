"""The pub/sub endpoints and a test page using hubbub.js, for tests/e2e/test_pubsub_browser.py.

Routes: ``/ws/pubsub/`` (PubSubConsumer), ``/pubsub/events/`` (PubSubEventStream),
``/page/`` (tests/e2e/pubsub_page.html), ``/static/`` (hubbub.js through staticfiles),
and ``POST /control/mute/``: every WebSocket and event stream open at that moment goes
silent (answers nothing, delivers nothing) while its TCP connection stays up, as a
connection black-holed by the network would. ``/ws/refused/`` has no route: its
handshake fails. Event streams ping every 0.2 s, so a client may count 1 s of silence as death.

Env: ``PUBSUB_REDIS`` (a Redis URL) and ``PUBSUB_REDIS_PREFIX`` run it on the Redis layer;
groups named ``news*`` keep 1,000 messages of history either way.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
django.setup()

from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402
from django.urls import path  # noqa: E402

from hubbub.generic.pubsub import PubSubConsumer, PubSubEventStream  # noqa: E402
from hubbub.layers import InMemoryChannelLayer, channel_layers  # noqa: E402
from hubbub.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

HISTORY = {"news*": {"history": 1000}}
CONTROL_GROUP = "test.control"
PAGE = (Path(__file__).parent / "pubsub_page.html").read_bytes()


def make_layer() -> Any:
    if os.environ.get("PUBSUB_REDIS"):
        from hubbub.layers.redis import RedisChannelLayer

        return RedisChannelLayer(
            hosts=[os.environ["PUBSUB_REDIS"]],
            prefix=os.environ.get("PUBSUB_REDIS_PREFIX", "pubsubtest"),
            groups=HISTORY,
        )
    return InMemoryChannelLayer(groups=HISTORY)


channel_layers.set("default", make_layer())


class MutablePubSub(PubSubConsumer):
    """PubSubConsumer that a ``test.mute`` message turns into a black hole."""

    muted = False

    async def connect(self) -> None:
        await self.channel_layer.group_add(CONTROL_GROUP, self.channel_name)
        self.groups.append(CONTROL_GROUP)
        await self.accept()

    async def test_mute(self, event: dict) -> None:
        self.muted = True

    async def receive(self, text_data: Any = None, bytes_data: Any = None, **kwargs: Any) -> None:
        if not self.muted:
            await super().receive(text_data, bytes_data)

    async def send_json(self, content: Any, close: bool = False) -> None:
        if not self.muted:
            await super().send_json(content, close)


class MutableEventStream(PubSubEventStream):
    """PubSubEventStream that pings often and that a ``test.mute`` message silences."""

    heartbeat = 0.2
    muted = False

    async def stream(self) -> None:
        await self.channel_layer.group_add(CONTROL_GROUP, self.channel_name)
        await super().stream()

    async def test_mute(self, event: dict) -> None:
        self.muted = True

    async def send_event(self, frame: dict) -> None:
        if not self.muted:
            await super().send_event(frame)

    async def disconnect(self) -> None:
        await self.channel_layer.group_discard(CONTROL_GROUP, self.channel_name)
        await super().disconnect()


async def respond(send: Any, status: int, body: bytes, content_type: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", content_type)]})
    await send({"type": "http.response.body", "body": body})


async def page(scope: dict, receive: Any, send: Any) -> None:
    await respond(send, 200, PAGE, b"text/html; charset=utf-8")


async def mute(scope: dict, receive: Any, send: Any) -> None:
    await channel_layers["default"].group_send(CONTROL_GROUP, {"type": "test.mute"})
    await respond(send, 204, b"", b"text/plain")


application = ASGIStaticFilesHandler(
    ProtocolTypeRouter(
        {
            "websocket": URLRouter([path("ws/pubsub/", MutablePubSub.as_asgi())]),
            "http": URLRouter(
                [
                    path("pubsub/events/", MutableEventStream.as_asgi()),
                    path("page/", page),
                    path("control/mute/", mute),
                ]
            ),
        }
    )
)

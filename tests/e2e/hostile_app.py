"""An application for hostile and bursty clients through a real server (see test_hostile_input.py)."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
django.setup()

from django.urls import path  # noqa: E402

from hubbub.fastlane import forward_json  # noqa: E402
from hubbub.generic.pubsub import PubSubConsumer  # noqa: E402
from hubbub.generic.websocket import (  # noqa: E402
    AsyncJsonWebsocketConsumer,
    AsyncWebsocketConsumer,
    JsonWebsocketConsumer,
    WebsocketConsumer,
)
from hubbub.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

ROOM = "room"


class JsonEcho(AsyncJsonWebsocketConsumer):
    async def receive_json(self, content, **kwargs):
        await self.send_json(content)


class SyncJsonEcho(JsonWebsocketConsumer):
    def receive_json(self, content, **kwargs):
        self.send_json(content)


class Room(AsyncJsonWebsocketConsumer):
    """Every frame ``{"n": ...}`` goes to the whole room; ``{"count": true}`` asks how many are in it."""

    groups = [ROOM]

    async def receive_json(self, content, **kwargs):
        if content.get("count"):
            await self.send_json({"members": await self.channel_layer.group_count(ROOM)})
        else:
            await self.channel_layer.group_send(ROOM, {"type": "room.message", "n": content["n"]})

    room_message = forward_json(build=lambda event: {"n": event["n"]})


class Echo(AsyncWebsocketConsumer):
    async def receive(self, text_data=None, bytes_data=None):
        await self.send(text_data=text_data, bytes_data=bytes_data)


class SyncEcho(WebsocketConsumer):
    def receive(self, text_data=None, bytes_data=None):
        self.send(text_data=text_data, bytes_data=bytes_data)


LIMITS = {"max_messages_per_second": 20, "max_bytes_per_second": 4096}

# Refusal lines are rate-limited per close code and consumer class: each test case gets a
# class of its own, so that its line is not one left out after another test's.
CASES = ["bad", "deep", "unclosed", "binary"]


def _case_routes(base: type, prefix: str) -> list:
    return [path(f"ws/{prefix}/{case}/", type(f"{base.__name__}_{case}", (base,), {}).as_asgi()) for case in CASES]


application = ProtocolTypeRouter(
    {
        "websocket": URLRouter(
            [
                path("ws/json/", JsonEcho.as_asgi()),
                *_case_routes(JsonEcho, "json"),
                *_case_routes(SyncJsonEcho, "sync-json"),
                path("ws/room/", Room.as_asgi()),
                path("ws/echo/", Echo.as_asgi()),
                path("ws/limited/", Echo.as_asgi(**LIMITS)),
                path("ws/sync-limited/", SyncEcho.as_asgi(**LIMITS)),
                path("ws/pubsub/", PubSubConsumer.as_asgi()),
            ]
        ),
    }
)

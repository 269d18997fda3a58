"""A small hubbub application for the Granian tests (tests/e2e/test_granian.py).

``/ws/room/<room>/`` joins the group ``room-<room>``; a JSON ``{"text": ...}`` goes to the
whole room, ``{"flood": n, "size": bytes}`` sends ``n`` group messages to it (to stall a client that does not
read). ``/ws/stats/<room>/`` answers any message with the room's member count and how many
room consumers have run ``disconnect()``, with which close codes: what a test cannot see
from the client side.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
django.setup()

from django.urls import path  # noqa: E402  (after django.setup(), as in an asgi.py)

from hubbub.fastlane import forward_json  # noqa: E402
from hubbub.generic.websocket import AsyncJsonWebsocketConsumer  # noqa: E402
from hubbub.layers import BaseChannelLayer  # noqa: E402
from hubbub.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

#: The close code of every room consumer whose disconnect() ran, in this process.
DISCONNECTS: list[int | None] = []


class WithLayer(AsyncJsonWebsocketConsumer):
    @property
    def layer(self) -> BaseChannelLayer:
        assert self.channel_layer is not None, "tests.settings configures the in-memory layer"
        return self.channel_layer


class Room(WithLayer):
    async def connect(self) -> None:
        self.room = "room-" + self.scope["url_route"]["kwargs"]["room"]
        await self.layer.group_add(self.room, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int | None) -> None:
        DISCONNECTS.append(code)
        await self.layer.group_discard(self.room, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if "flood" in content:
            size = content.get("size", 600)
            for n in range(content["flood"]):
                text = f"{n:06d}".ljust(size, ".")
                await self.layer.group_send(self.room, {"type": "room.message", "text": text})
                if n % 50 == 0:
                    await asyncio.sleep(0)
        else:
            await self.layer.group_send(self.room, {"type": "room.message", "text": content["text"]})

    room_message = forward_json(build=lambda event: {"text": event["text"]})


class Stats(WithLayer):
    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        room = "room-" + self.scope["url_route"]["kwargs"]["room"]
        await self.send_json({"members": await self.layer.group_count(room), "disconnects": DISCONNECTS})


application = ProtocolTypeRouter(
    {
        "websocket": URLRouter(
            [
                path("ws/room/<slug:room>/", Room.as_asgi()),  # type: ignore[arg-type]  # django-stubs: views only
                path("ws/stats/<slug:room>/", Stats.as_asgi()),  # type: ignore[arg-type]
            ]
        ),
    }
)

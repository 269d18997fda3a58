"""An application exercising the core through a real server (see test_core.py)."""

import asyncio
import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
django.setup()

from django.urls import path  # noqa: E402

from hubbub.fastlane import forward_json  # noqa: E402
from hubbub.generic.websocket import AsyncJsonWebsocketConsumer, AsyncWebsocketConsumer, WebsocketConsumer  # noqa: E402
from hubbub.routing import ProtocolTypeRouter, URLRouter  # noqa: E402


class Echo(AsyncWebsocketConsumer):
    async def receive(self, text_data=None, bytes_data=None):
        if text_data == "close":
            await self.close(code=4000, reason="you asked")
        elif text_data == "raise":
            raise RuntimeError("handler failed on purpose")
        else:
            await self.send(text_data=text_data, bytes_data=bytes_data)


class SyncEcho(WebsocketConsumer):
    def receive(self, text_data=None, bytes_data=None):
        self.send(text_data=text_data, bytes_data=bytes_data)


class Chat(AsyncJsonWebsocketConsumer):
    async def connect(self):
        self.group = "chat_" + self.scope["url_route"]["kwargs"]["room"]
        self.groups.append(self.group)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def receive_json(self, content, **kwargs):
        if content.get("burst"):
            # Publish to another room: this consumer is busy in this handler, so it could not
            # drain its own channel while the burst runs.
            for n in range(content["burst"]):
                await self.channel_layer.group_send(content["to"], {"type": "chat.message", "n": n})
                if n % 20 == 0:
                    await asyncio.sleep(0)  # let members drain: stay under capacity
        elif content.get("fail_in_group"):
            await self.channel_layer.group_send(self.group, {"type": "chat.fail"})
        elif content.get("stats"):
            await self.send_json({"members": await self.channel_layer.group_count(content["stats"])})
        else:
            await self.channel_layer.group_send(self.group, {"type": "chat.message", "text": content.get("text")})

    async def chat_fail(self, event):
        raise RuntimeError("group handler failed on purpose")

    chat_message = forward_json(build=lambda event: {key: value for key, value in event.items() if key != "type"})


application = ProtocolTypeRouter(
    {
        "websocket": URLRouter(
            [
                path("ws/echo/", Echo.as_asgi()),
                path("ws/sync-echo/", SyncEcho.as_asgi()),
                path("ws/chat/<slug:room>/", Chat.as_asgi()),
            ]
        ),
    }
)

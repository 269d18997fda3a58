"""The tutorial's chat consumer and the pub/sub endpoint of hubbub.js in one site, on Redis.

For tests/e2e/test_shared_groups.py, which runs it in two uvicorn processes: chat sockets
on one, a page subscribing with presence to the same group on the other. Env:
``SHARED_REDIS`` (a Redis URL) and ``SHARED_REDIS_PREFIX``.
"""

from __future__ import annotations

import json
import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
django.setup()

from django.urls import path  # noqa: E402

from hubbub.generic.pubsub import PubSubConsumer  # noqa: E402
from hubbub.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from hubbub.layers import channel_layers  # noqa: E402
from hubbub.layers.redis import RedisChannelLayer  # noqa: E402
from hubbub.routing import URLRouter  # noqa: E402


class ChatConsumer(AsyncWebsocketConsumer):
    """docs/tutorial.md, step 4: knows nothing of presence or pub/sub."""

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


channel_layers.set(
    "default", RedisChannelLayer(hosts=[os.environ["SHARED_REDIS"]], prefix=os.environ["SHARED_REDIS_PREFIX"])
)

application = URLRouter(
    [
        path("ws/chat/<str:room_name>/", ChatConsumer.as_asgi()),
        path("ws/pubsub/", PubSubConsumer.as_asgi()),
    ]
)

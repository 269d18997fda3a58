"""The tutorial's chat consumers (group joined before accept) behind the usual routers, for test_wrong_paths.py."""

import json
import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
django.setup()

from asgiref.sync import async_to_sync  # noqa: E402
from django.urls import path, re_path  # noqa: E402

from hubbub.generic.http import AsyncHttpConsumer  # noqa: E402
from hubbub.generic.websocket import AsyncWebsocketConsumer, WebsocketConsumer  # noqa: E402
from hubbub.routing import ProtocolTypeRouter, URLRouter  # noqa: E402


class ChatConsumer(AsyncWebsocketConsumer):
    """As the tutorial writes it: the room's group joined in connect(), before accept()."""

    async def connect(self):
        self.room_group_name = f"chat_{self.scope['url_route']['kwargs']['room_name']}"
        await self.channel_layer.group_add(self.room_group_name, self.channel_name)
        await self.accept()

    async def disconnect(self, close_code):
        if hasattr(self, "room_group_name"):
            await self.channel_layer.group_discard(self.room_group_name, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None):
        await self.channel_layer.group_send(self.room_group_name, {"type": "chat.message", "message": text_data})

    async def chat_message(self, event):
        await self.send(text_data=json.dumps({"message": event["message"]}))


class SyncChatConsumer(WebsocketConsumer):
    """The tutorial's first, synchronous version."""

    def connect(self):
        self.room_group_name = f"chat_{self.scope['url_route']['kwargs']['room_name']}"
        async_to_sync(self.channel_layer.group_add)(self.room_group_name, self.channel_name)
        self.accept()


class Hello(AsyncHttpConsumer):
    async def handle(self, body):
        await self.send_response(200, b"hello", headers=[(b"content-type", b"text/plain")])


application = ProtocolTypeRouter(
    {
        "http": URLRouter([path("hello/", Hello.as_asgi())]),
        "websocket": URLRouter(
            [
                re_path(r"^ws/chat/(?P<room_name>[^/]+)/$", ChatConsumer.as_asgi()),
                re_path(r"^ws/sync-chat/(?P<room_name>[^/]+)/$", SyncChatConsumer.as_asgi()),
            ]
        ),
    }
)

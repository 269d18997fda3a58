"""The chat tutorial's consumers: a synchronous echo and an async group chat."""

import json

from hubbub.generic.websocket import AsyncWebsocketConsumer, WebsocketConsumer

MAX_MESSAGE_LENGTH = 2000


class EchoConsumer(WebsocketConsumer):
    """Sends every text frame straight back (the tutorial's first step)."""

    def receive(self, text_data=None, bytes_data=None):
        if text_data is not None:
            self.send(text_data=text_data)
        else:
            self.send(bytes_data=bytes_data)


class ChatConsumer(AsyncWebsocketConsumer):
    """Joins group ``chat_<room>`` and relays each message to everyone in the room."""

    async def connect(self):
        self.room_name = self.scope["url_route"]["kwargs"]["room_name"]
        self.room_group_name = f"chat_{self.room_name}"
        await self.channel_layer.group_add(self.room_group_name, self.channel_name)
        await self.accept()

    async def disconnect(self, close_code):
        await self.channel_layer.group_discard(self.room_group_name, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None):
        try:
            message = json.loads(text_data)["message"]
        except (TypeError, ValueError, KeyError):
            await self.send(text_data=json.dumps({"error": 'send JSON like {"message": "hello"}'}))
            return
        await self.channel_layer.group_send(self.room_group_name, {"type": "chat.message", "message": message})

    async def chat_message(self, event):
        await self.send(text_data=json.dumps({"message": event["message"]}))

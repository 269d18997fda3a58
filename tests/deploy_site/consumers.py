"""Consumers of the deployment tests' site."""

from __future__ import annotations

from hubbub.fastlane import forward_json
from hubbub.generic.websocket import AsyncJsonWebsocketConsumer

from .views import PUSH_GROUP


class WhereAmI(AsyncJsonWebsocketConsumer):
    """Answers the handshake with the client address and scheme in its scope."""

    async def connect(self) -> None:
        await self.accept()
        client = self.scope.get("client")
        await self.send_json({"client": client[0] if client else None, "scheme": self.scope.get("scheme")})


class Push(AsyncJsonWebsocketConsumer):
    """Joins the push group and forwards what views send to it."""

    async def connect(self) -> None:
        await self.channel_layer.group_add(PUSH_GROUP, self.channel_name)
        await self.accept()
        await self.send_json({"joined": PUSH_GROUP})

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(PUSH_GROUP, self.channel_name)

    push_text = forward_json(build=lambda event: {"text": event["text"]})

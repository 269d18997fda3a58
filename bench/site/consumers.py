"""The two consumers the scenarios drive: an echo, and a member of group ``bench``."""

from __future__ import annotations

from typing import Any

from .frameworks import AsyncWebsocketConsumer, forward_text

GROUP = "bench"


class EchoConsumer(AsyncWebsocketConsumer):
    """Sends every frame straight back."""

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        await self.send(text_data=text_data, bytes_data=bytes_data)


class GroupConsumer(AsyncWebsocketConsumer):
    """Joins group ``bench`` on connect and forwards each group message's text to its client."""

    async def connect(self) -> None:
        await self.channel_layer.group_add(GROUP, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(GROUP, self.channel_name)

    if forward_text is not None:  # hubbub: one frame per group_send, no consumer woken (hubbub.fastlane)
        bench_message = forward_text("text")
    else:

        async def bench_message(self, event: Any) -> None:
            await self.send(text_data=event["text"])

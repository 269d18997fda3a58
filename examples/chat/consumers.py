"""The chat rooms: a synchronous echo (the first tutorial step) and the async room consumer."""

from __future__ import annotations

from typing import Any

from demo.frames import BadFrame, GuardedJsonMixin, InboundLimits, read_text, text_field
from demo.names import SESSION_NAME_KEY, clean_name, generate_name, visitor_name
from hubbub.db import database_sync_to_async
from hubbub.fastlane import forward_json
from hubbub.generic.websocket import AsyncJsonWebsocketConsumer, WebsocketConsumer
from hubbub.refusals import log_refused_frame

#: Longest chat line, in characters.
MAX_CHAT_CHARS = 500

#: Close code for a socket refused because of its URL (4000-4999 are for applications).
CLOSE_BAD_NAME = 4400


class EchoConsumer(InboundLimits, WebsocketConsumer):
    """Sends each text frame straight back; a refused frame gets ``error: ...``."""

    def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            self.send(text_data=read_text(text_data, bytes_data))
        except BadFrame as exc:
            log_refused_frame(self, "bad_frame", str(exc))
            self.send(text_data=f"error: {exc}")


class ChatConsumer(InboundLimits, GuardedJsonMixin, AsyncJsonWebsocketConsumer):
    """Joins group ``chat_<room>``; each ``{"message": ...}`` goes to everyone in that room."""

    async def connect(self) -> None:
        room = self.scope["url_route"]["kwargs"]["room_name"]
        await self.accept()
        if not room or clean_name(room) != room:
            await self.send_json({"error": f"{room!r} is not a room name: use up to 40 letters, digits, - or _"})
            await self.close(code=CLOSE_BAD_NAME)
            return
        self.room_group_name = f"chat_{room}"
        self.user_name = await self._name()
        await self.channel_layer.group_add(self.room_group_name, self.channel_name)
        await self.send_json({"joined": room, "you": self.user_name})

    async def _name(self) -> str:
        """The visitor's name; an anonymous visitor without one gets a new name, kept in their
        session if they have one (a socket cannot set the cookie that would start a session)."""
        session = self.scope.get("session")
        name = visitor_name(self.scope.get("user"), session)
        if name is None:
            name = generate_name()
            if session is not None and session.session_key:
                session[SESSION_NAME_KEY] = name
                await database_sync_to_async(session.save)()
        return name

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "room_group_name"):
            await self.channel_layer.group_discard(self.room_group_name, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if not hasattr(self, "room_group_name"):
            return
        try:
            message = text_field(content, "message", MAX_CHAT_CHARS)
        except BadFrame as exc:
            await self.send_json(self.error_reply(str(exc)))
            return
        await self.channel_layer.group_send(
            self.room_group_name, {"type": "chat.message", "user": self.user_name, "message": message}
        )

    #: Every member of the room gets the same frame: a forward (hubbub.fastlane) writes it to each
    #: member's socket without waking its consumer.
    chat_message = forward_json(build=lambda event: {"user": event["user"], "message": event["message"]})

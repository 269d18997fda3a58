"""Notifications for logged-in users: a comment posted in one browser shows up in the others."""

from __future__ import annotations

from typing import Any, Dict

from hubbub.db import database_sync_to_async
from hubbub.generic.websocket import AsyncJsonWebsocketConsumer

from demo.frames import BadFrame, GuardedJsonMixin, InboundLimits, text_field

from .comments import MAX_COMMENT_CHARS, add_comment, comment_json, recent_comments

#: Every logged-in socket is in this group.
NOTIFICATIONS_GROUP = "notifications"


class NotificationConsumer(InboundLimits, GuardedJsonMixin, AsyncJsonWebsocketConsumer):
    """Refuses anonymous users; ``{"comment": text}`` saves a comment and notifies everyone."""

    async def connect(self) -> None:
        self.user = self.scope.get("user")
        if self.user is None or not self.user.is_authenticated:
            await self.close()  # before accept: the handshake is refused with 403
            return
        await self.channel_layer.group_add(NOTIFICATIONS_GROUP, self.channel_name)
        await self.accept()
        await self.send_json({"type": "recent", "comments": await database_sync_to_async(recent_comments)()})

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(NOTIFICATIONS_GROUP, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        try:
            text = text_field(content, "comment", MAX_COMMENT_CHARS)
        except BadFrame as exc:
            await self.send_json(self.error_reply(str(exc)))
            return
        comment_id = await database_sync_to_async(add_comment)(self.user, text)
        await self.channel_layer.group_send(NOTIFICATIONS_GROUP, {"type": "comment.posted", "id": comment_id})

    async def comment_posted(self, event: Dict[str, Any]) -> None:
        comment = await database_sync_to_async(comment_json)(event["id"])
        if comment is not None:
            comment["mine"] = comment["author"] == self.user.get_username()
            await self.send_json({"type": "comment", "comment": comment})

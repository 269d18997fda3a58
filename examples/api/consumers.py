"""Request/response over a socket: every JSON request is answered with its own data."""

from __future__ import annotations

from typing import Any, Dict

from hubbub.generic.websocket import AsyncJsonWebsocketConsumer

from demo.frames import GuardedJsonMixin, InboundLimits


class RequestResponseConsumer(InboundLimits, GuardedJsonMixin, AsyncJsonWebsocketConsumer):
    """Answers each request with ``{"status": "OK", "data": request}``."""

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        await self.send_json({"status": "OK", "data": content})

    def error_reply(self, message: str) -> Dict[str, Any]:
        return {"status": "error", "error": message}

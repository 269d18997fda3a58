"""One socket per dashboard tab: answers requests by ``type`` and forwards pushed updates."""

from __future__ import annotations

from typing import Any, Dict, Optional
from urllib.parse import parse_qs

from django.conf import settings

from hubbub.db import database_sync_to_async
from hubbub.generic.websocket import AsyncJsonWebsocketConsumer

from demo.frames import GuardedJsonMixin, InboundLimits

from .data import DASHBOARD_GROUP, DATA_SETS

#: Close code for a socket without the right token.
CLOSE_UNAUTHORISED = 4401


def handshake_token(scope: Dict[str, Any]) -> Optional[str]:
    """The ``token`` handshake header (or ``Authorization: Token ...``), else ``?token=`` in the query."""
    for key, value in scope.get("headers", []):
        if key == b"token":
            return value.decode("latin-1")
        if key == b"authorization" and value[:6].lower() == b"token ":
            return value[6:].decode("latin-1").strip()
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token")
    return values[0] if values else None


class DashboardConsumer(InboundLimits, GuardedJsonMixin, AsyncJsonWebsocketConsumer):
    """Send ``{"type": "all_patient_page_data"}`` or ``{"type": "all_active_visit_data"}``."""

    async def connect(self) -> None:
        await self.accept()
        if handshake_token(self.scope) != settings.DASHBOARD_TOKEN:
            await self.send_json({"code": 401, "error": "missing or wrong token"})
            await self.close(code=CLOSE_UNAUTHORISED)
            return
        self.joined = True
        await self.channel_layer.group_add(DASHBOARD_GROUP, self.channel_name)

    async def disconnect(self, code: int) -> None:
        if getattr(self, "joined", False):
            await self.channel_layer.group_discard(DASHBOARD_GROUP, self.channel_name)

    def error_reply(self, message: str) -> Dict[str, Any]:
        return {"code": 400, "error": message}

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if not getattr(self, "joined", False):
            return
        kind = content.get("type") if isinstance(content, dict) else None
        if not isinstance(kind, str):
            await self.send_json(self.error_reply('send a JSON object with a "type"'))
            return
        build = DATA_SETS.get(kind)
        if build is None:
            await self.send_json({"code": 404, "error": f"unknown type {kind[:40]!r}", "types": sorted(DATA_SETS)})
            return
        await self.send_json({"code": 200, "type": kind, "data": await database_sync_to_async(build)()})

    async def dashboard_push(self, event: Dict[str, Any]) -> None:
        for kind, rows in event["sets"].items():
            await self.send_json({"code": 200, "type": kind, "data": rows, "pushed": True})

"""A consumer written with the raw handlers: answers with a timestamp, and closes on ``close``."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, Dict

from hubbub.consumer import AsyncConsumer
from hubbub.exceptions import StopConsumer
from hubbub.refusals import log_refused_frame

from demo.frames import BadFrame, read_text

#: The text that makes the server close the socket.
CLOSE_COMMAND = "close"


class StampedEchoConsumer(AsyncConsumer):
    """Each text frame comes back as ``{"echo": text, "at": ISO time}``; ``close`` ends the socket."""

    async def websocket_connect(self, message: Dict[str, Any]) -> None:
        await self.send({"type": "websocket.accept"})

    async def websocket_receive(self, message: Dict[str, Any]) -> None:
        try:
            text = read_text(message.get("text"), message.get("bytes"))
        except BadFrame as exc:
            log_refused_frame(self, "bad_frame", str(exc))
            await self._reply({"error": str(exc)})
            return
        await self._reply({"echo": text})
        if text.strip() == CLOSE_COMMAND:
            await self.send({"type": "websocket.close", "code": 1000, "reason": "closed on request"})
            raise StopConsumer()

    async def websocket_disconnect(self, message: Dict[str, Any]) -> None:
        raise StopConsumer()

    async def _reply(self, content: Dict[str, Any]) -> None:
        content["at"] = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        await self.send({"type": "websocket.send", "text": json.dumps(content)})

"""Diners at one table share an order: every change goes to the group ``table_<id>``."""

from __future__ import annotations

from typing import Any

from demo.frames import BadFrame, GuardedJsonMixin, InboundLimits
from demo.names import MAX_NAME_LENGTH, clean_name, visitor_name
from hubbub.db import database_sync_to_async
from hubbub.fastlane import forward_json
from hubbub.generic.websocket import AsyncJsonWebsocketConsumer

from .orders import MENU, change_order, current_order

#: Close code for a table id that is not a clean name (too long, or characters a group name cannot have).
CLOSE_BAD_TABLE = 4400

ACTIONS = {"add": 1, "remove": -1}


class TableConsumer(InboundLimits, GuardedJsonMixin, AsyncJsonWebsocketConsumer):
    """Send ``{"action": "add" | "remove", "dish": name}``; everyone at the table gets the new order."""

    async def connect(self) -> None:
        self.table = self.scope["url_route"]["kwargs"]["table_id"]
        await self.accept()
        if not self.table or clean_name(self.table) != self.table:
            await self.send_json(
                {"error": f"{self.table[:60]!r} is not a table id: use up to {MAX_NAME_LENGTH} letters, digits, - or _"}
            )
            await self.close(code=CLOSE_BAD_TABLE)
            return
        self.group_name = f"table_{self.table}"
        self.diner = visitor_name(self.scope.get("user"), self.scope.get("session")) or "a diner"
        await self.channel_layer.group_add(self.group_name, self.channel_name)
        order = await database_sync_to_async(current_order)(self.table)
        await self.send_json({"type": "order", "items": order, "menu": MENU})

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group_name"):
            await self.channel_layer.group_discard(self.group_name, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if not hasattr(self, "group_name"):
            return
        try:
            delta, dish = self._read_change(content)
        except BadFrame as exc:
            await self.send_json(self.error_reply(str(exc)))
            return
        order = await database_sync_to_async(change_order)(self.table, dish, delta)
        await self.channel_layer.group_send(
            self.group_name,
            {"type": "order.changed", "items": order, "by": self.diner, "action": content["action"], "dish": dish},
        )

    @staticmethod
    def _read_change(content: Any) -> tuple[int, str]:
        """``(delta, dish)`` from a change request, or ``BadFrame``."""
        if not isinstance(content, dict) or content.get("action") not in ACTIONS:
            raise BadFrame('send {"action": "add" or "remove", "dish": ...}')
        if content.get("dish") not in MENU:
            raise BadFrame(f"{str(content.get('dish'))[:40]!r} is not on the menu")
        return ACTIONS[content["action"]], content["dish"]

    #: The same frame for every diner: a forward (hubbub.fastlane), written without waking each consumer.
    order_changed = forward_json(
        build=lambda event: {
            "type": "order",
            "items": event["items"],
            "by": event["by"],
            "action": event["action"],
            "dish": event["dish"],
        }
    )

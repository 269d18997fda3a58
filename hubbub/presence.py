"""``self.presence`` on consumers: join a group as a visible member, leave it, and leave on exit.

``await self.presence.join("room", info={"name": "Ann"})`` adds the consumer's channel
to the group and registers it with the layer's presence (``presence_add``), with the
user id of ``scope["user"]`` when it is authenticated. Everyone in the group then
gets a ``presence.join`` message (handler ``presence_join``); ``leave`` or the end
of the consumer sends ``presence.leave``. ``await self.channel_layer.presence("room")``
lists the members. A consumer in the group without those handlers skips both events
(``hubbub.consumer.HUBBUB_EVENT_TYPES``): sharing a group with a presence user never closes it.
"""

from __future__ import annotations

import logging
from typing import Any

from .connection import ConnectionHooks, add_hooks

__all__ = ["Presence", "PresenceAttribute", "leave_all_if_used", "user_id_of"]

logger = logging.getLogger("hubbub.presence")


def user_id_of(scope: dict[str, Any]) -> Any:
    """The primary key of ``scope["user"]`` when authenticated, else None (anonymous or no auth)."""
    user = scope.get("user")
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    pk = user.pk
    return pk if isinstance(pk, (int, str)) else str(pk)  # e.g. a UUID: members travel as JSON


class Presence:
    """One consumer's presence in groups (made on first use of ``consumer.presence``)."""

    __slots__ = ("consumer", "joined")

    def __init__(self, consumer: Any):
        self.consumer = consumer
        #: The groups this consumer is present in, in the order it joined them.
        self.joined: list[str] = []

    async def join(self, group: str, info: Any = None) -> dict[str, Any]:
        """Join ``group`` (``group_add`` too) as a member with ``info``; joining again updates ``info``."""
        consumer = self.consumer
        layer = consumer.channel_layer
        if layer is None:
            raise RuntimeError("presence needs a channel layer: CHANNEL_LAYERS has none for this consumer")
        await layer.group_add(group, consumer.channel_name)
        member: dict[str, Any] = await layer.presence_add(
            group, consumer.channel_name, user_id=user_id_of(consumer.scope), info=info
        )
        if group not in self.joined:
            self.joined.append(group)
        return member

    async def leave(self, group: str) -> bool:
        """Leave ``group`` (``group_discard`` first: the leaver does not hear its own leave); False if not present."""
        layer = self.consumer.channel_layer
        if group not in self.joined or layer is None:
            return False
        self.joined.remove(group)
        channel = self.consumer.channel_name
        await layer.group_discard(group, channel)
        removed: bool = await layer.presence_remove(group, channel)
        return removed

    async def members(self, group: str) -> list[dict[str, Any]]:
        """Everyone present in ``group`` (this consumer included, once joined)."""
        members: list[dict[str, Any]] = await self.consumer.channel_layer.presence(group)
        return members

    async def leave_all(self) -> None:
        """Leave every joined group; called when the consumer ends, however it ended."""
        for group in list(self.joined):
            try:
                await self.leave(group)
            except Exception:  # the consumer is ending anyway; the layer's timeout is the backstop
                logger.exception("could not leave presence of group %r", group)


class PresenceAttribute:
    """``consumer.presence``: a ``Presence`` made on first access and kept on the instance."""

    def __get__(self, consumer: Any, owner: type | None = None) -> Any:
        if consumer is None:
            return self
        presence = consumer.__dict__["presence"] = Presence(consumer)
        return presence


async def leave_all_if_used(consumer: Any) -> None:
    """End-of-consumer hook: leave presence everywhere, only if ``consumer.presence`` was ever used."""
    presence = consumer.__dict__.get("presence")
    if presence is not None:
        await presence.leave_all()


#: Every consumer leaves presence when it ends (only if it used it): see hubbub.connection.
add_hooks(ConnectionHooks(closed=leave_all_if_used))

"""Group members whose handlers are forwards (hubbub.fastlane), and a control socket, for tests/e2e/test_fastlane.py.

``/ws/member/`` (async JSON consumer) and ``/ws/sync-member/`` (sync JSON consumer) join group
``feed`` and forward its messages: text, bytes, JSON, and JSON filtered per member (``?m=``:
every m-th). ``/ws/control/`` takes ``publish <members> <count>`` (waits until that many members
are connected and idle, sends ``count`` messages of every kind and a last ``end``, answers
``published``) and ``stats`` (answers the handler dispatches and metrics of this process as JSON).
The layer is the in-memory one, which offers the fastlane; ``HUBBUB_FASTLANE=0``
in the environment runs the same on the normal path.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
from typing import Any

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
django.setup()

from django.urls import path  # noqa: E402

from hubbub import metrics  # noqa: E402
from hubbub.fastlane import forward_bytes, forward_json, forward_text  # noqa: E402
from hubbub.generic.websocket import AsyncJsonWebsocketConsumer, AsyncWebsocketConsumer, JsonWebsocketConsumer  # noqa: E402
from hubbub.layers import InMemoryChannelLayer, channel_layers  # noqa: E402
from hubbub.routing import URLRouter  # noqa: E402

channel_layers.set("default", InMemoryChannelLayer())

GROUP = "feed"
KINDS = ("chat.message", "blob.ready", "item", "filtered")
DISPATCHED: collections.Counter[str] = collections.Counter()
MEMBERS: list[Any] = []


def every_mth(consumer: Any, event: dict) -> bool:
    query = consumer.scope.get("query_string", b"").decode()
    return event["n"] % int(query.partition("m=")[2] or 1) == 0


class Forwarding:
    """The forwards both members share, and a count of what their handlers were dispatched."""

    groups = [GROUP]
    chat_message = forward_text("text")
    blob_ready = forward_bytes("bytes")
    item = forward_json("content")
    filtered = forward_json(build=lambda event: {"n": event["n"]}, accept=every_mth)

    async def dispatch(self, message: dict) -> None:
        DISPATCHED[message["type"]] += 1
        if message["type"] == "websocket.connect":
            MEMBERS.append(self)
        elif message["type"] == "websocket.disconnect":
            MEMBERS.remove(self)
        await super().dispatch(message)  # type: ignore[misc]


class Member(Forwarding, AsyncJsonWebsocketConsumer):
    pass


class SyncMember(Forwarding, JsonWebsocketConsumer):
    pass


def event(kind: str, n: int) -> dict:
    return {
        "chat.message": {"type": kind, "text": f"text {n}"},
        "blob.ready": {"type": kind, "bytes": n.to_bytes(2, "big")},
        "item": {"type": kind, "content": {"item": n, "name": "é"}},
        "filtered": {"type": kind, "n": n},
    }[kind]


class Control(AsyncWebsocketConsumer):
    async def receive(self, text_data: Any = None, bytes_data: Any = None) -> None:
        command, *args = text_data.split()
        if command == "publish":
            members, count = map(int, args)
            await self.idle(members)
            for n in range(count):
                for kind in KINDS:
                    await self.channel_layer.group_send(GROUP, event(kind, n))
            await self.channel_layer.group_send(GROUP, {"type": "chat.message", "text": "end"})
            await self.send(text_data="published")
        elif command == "stats":
            await self.send(
                text_data=json.dumps(
                    {
                        "dispatched": {kind: DISPATCHED[kind] for kind in KINDS},
                        "in": {kind: metrics.messages_in.get(kind) for kind in KINDS},
                        "out": metrics.messages_out.get("websocket.send"),
                    }
                )
            )

    async def idle(self, members: int) -> None:
        """Wait (5 s at most) until ``members`` members are connected and none is in a handler."""
        for _ in range(500):
            if len(MEMBERS) >= members and not any(m._dispatch_lock.locked() for m in MEMBERS):
                return
            await asyncio.sleep(0.01)
        raise RuntimeError(f"{len(MEMBERS)} of {members} members connected and idle after 5 s")


application = URLRouter(
    [
        path("ws/member/", Member.as_asgi()),
        path("ws/sync-member/", SyncMember.as_asgi()),
        path("ws/control/", Control.as_asgi()),
    ]
)

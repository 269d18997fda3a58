"""Group members whose handlers are forwards (hubbub.fastlane), and a control socket, for tests/e2e/test_fastlane.py.

``/ws/member/`` (async JSON consumer) and ``/ws/sync-member/`` (sync JSON consumer) join group
``feed`` and forward its messages: text, bytes, JSON, and JSON filtered per member (``?m=``:
every m-th). ``/ws/control/`` takes ``publish <members> <count>`` (waits until that many members
are connected and idle, sends ``count`` messages of every kind and a last ``end``, answers
``published``), ``idle <members>`` (the same wait, answers ``idle``: for a second process whose
members another one publishes to) and ``stats`` (answers the handler dispatches, metrics and
frames written through the server's ``hubbub.prepared_frames`` writer in this process, as JSON).
``FASTLANE_LAYER`` picks the layer, each offering the fastlane: ``memory`` (the default), or
``redis`` / ``pubsub`` (RedisChannelLayer / RedisPubSubChannelLayer on ``FASTLANE_REDIS`` with
key prefix ``FASTLANE_REDIS_PREFIX``, so that several processes share the group).
``HUBBUB_FASTLANE=0`` in the environment runs the same on the normal path.
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
from hubbub.typing import Receive, Scope, Send  # noqa: E402


def make_layer(kind: str) -> Any:
    if kind == "memory":
        return InMemoryChannelLayer()
    from hubbub.layers.redis import RedisChannelLayer, RedisPubSubChannelLayer

    layer_class = {"redis": RedisChannelLayer, "pubsub": RedisPubSubChannelLayer}[kind]
    return layer_class(hosts=[os.environ["FASTLANE_REDIS"]], prefix=os.environ["FASTLANE_REDIS_PREFIX"])


channel_layers.set("default", make_layer(os.environ.get("FASTLANE_LAYER", "memory")))

GROUP = "feed"
KINDS = ("chat.message", "blob.ready", "item", "filtered")
DISPATCHED: collections.Counter[str] = collections.Counter()
MEMBERS: list[Any] = []
#: Frames the server's prepared-frames writer took (``counting_writes``).
PREPARED = collections.Counter[str]()


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
        elif command == "idle":
            await self.idle(int(args[0]))
            await self.send(text_data="idle")
        elif command == "stats":
            await self.send(
                text_data=json.dumps(
                    {
                        "dispatched": {kind: DISPATCHED[kind] for kind in KINDS},
                        "in": {kind: metrics.messages_in.get(kind) for kind in KINDS},
                        "out": metrics.messages_out.get("websocket.send"),
                        "prepared": PREPARED["written"],
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


def counting_writes(app: Any) -> Any:
    """``app`` with the server's prepared-frames ``write`` (when it offers one) counting what it takes.

    The extension keeps its ``send``, which is still the server's own: the outbox uses the writer.
    """

    async def counted_app(scope: Scope, receive: Receive, send: Send) -> None:
        extensions = scope.get("extensions") or {}
        extension = extensions.get("hubbub.prepared_frames")
        if extension:
            write = extension["write"]

            def counted_write(frame: Any) -> bool:
                written = bool(write(frame))
                PREPARED["written"] += written
                return written

            extensions = {**extensions, "hubbub.prepared_frames": {**extension, "write": counted_write}}
            scope = {**scope, "extensions": extensions}
        await app(scope, receive, send)

    return counted_app


application = counting_writes(
    URLRouter(
        [
            path("ws/member/", Member.as_asgi()),
            path("ws/sync-member/", SyncMember.as_asgi()),
            path("ws/control/", Control.as_asgi()),
        ]
    )
)

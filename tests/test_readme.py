"""The README's quickstart works as printed."""

from __future__ import annotations

import re
from pathlib import Path

from django.urls import path

from hubbub.routing import URLRouter
from hubbub.testing import WebsocketCommunicator

README = Path(__file__).resolve().parent.parent / "README.md"


def quickstart_consumers() -> dict:
    block = re.search(r"## Quickstart\s+```python\n(.*?)```", README.read_text(), re.S).group(1)
    consumers = block.split("# chat/consumers.py", 1)[1].split("# myproject/asgi.py", 1)[0]
    namespace: dict = {}
    exec(compile(consumers, "README.md (quickstart)", "exec"), namespace)
    return namespace


async def test_quickstart_chat_consumer_relays_within_a_room():
    consumer = quickstart_consumers()["ChatConsumer"]
    app = URLRouter([path("ws/chat/<str:room>/", consumer.as_asgi())])
    alice, bob, eve = (WebsocketCommunicator(app, f"/ws/chat/{room}/") for room in ("lobby", "lobby", "other"))
    for comm in (alice, bob, eve):
        assert (await comm.connect())[0]
    await alice.send_json_to({"text": "hello"})
    assert await alice.receive_json_from() == {"text": "hello"}
    assert await bob.receive_json_from() == {"text": "hello"}
    assert await eve.receive_nothing(0.05)
    for comm in (alice, bob, eve):
        await comm.disconnect()

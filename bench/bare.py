"""The ceiling: framework-free ASGI apps doing the scenarios' work with nothing in between.

``/ws/echo`` sends every frame back. ``/ws/group`` joins the one in-process group;
``POST /publish/async`` (or ``/publish/sync``: the same here) puts the body on every
member's queue, and each member's own task sends it. That per-connection task and
queue is the least any consumer-per-connection design has to do per delivery, so
the broadcast app is the fair floor for CPU per delivery.

``GET /metrics`` answers with this process's garbage-collection pauses, measured by a
``gc.callbacks`` hook from import on, under the names hubbub's own metrics use
(``hubbub_gc_collections_total{generation}``, ``hubbub_gc_pause_seconds_total{generation}``,
``hubbub_gc_pause_max_seconds``), so the scale scenario reads both apps alike.
"""

from __future__ import annotations

import asyncio
import gc
import time
from typing import Any

from hubbub.typing import Receive, Scope, Send

_members: set[asyncio.Queue[str | None]] = set()


class _Pauses:
    """Collections and their pauses per generation, and the longest pause, since import."""

    def __init__(self) -> None:
        self.count = [0, 0, 0]
        self.seconds = [0.0, 0.0, 0.0]
        self.longest = 0.0
        self.began = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self.began = time.perf_counter()
            return
        pause = time.perf_counter() - self.began
        generation = info["generation"]
        self.count[generation] += 1
        self.seconds[generation] += pause
        self.longest = max(self.longest, pause)

    def render(self) -> bytes:
        lines = ["# TYPE hubbub_gc_collections counter"]
        lines += [f'hubbub_gc_collections_total{{generation="{g}"}} {n}' for g, n in enumerate(self.count)]
        lines.append("# TYPE hubbub_gc_pause_seconds counter")
        lines += [f'hubbub_gc_pause_seconds_total{{generation="{g}"}} {s!r}' for g, s in enumerate(self.seconds)]
        lines += ["# TYPE hubbub_gc_pause_max_seconds gauge", f"hubbub_gc_pause_max_seconds {self.longest!r}"]
        return ("\n".join(lines) + "\n").encode()


_pauses = _Pauses()
gc.callbacks.append(_pauses)


async def application(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "http":
        if scope["path"] == "/metrics":
            await _respond(send, _pauses.render())
        else:
            await _publish(receive, send)
    elif scope["type"] == "websocket":
        if scope["path"].endswith("/echo"):
            await _echo(receive, send)
        else:
            await _member(receive, send)


async def _echo(receive: Receive, send: Send) -> None:
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] != "websocket.receive":
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})


async def _member(receive: Receive, send: Send) -> None:
    await receive()  # websocket.connect
    inbox: asyncio.Queue[str | None] = asyncio.Queue()
    _members.add(inbox)
    await send({"type": "websocket.accept"})

    async def watch_for_disconnect() -> None:
        while (await receive())["type"] != "websocket.disconnect":
            pass
        inbox.put_nowait(None)

    watcher = asyncio.get_running_loop().create_task(watch_for_disconnect())
    try:
        while (text := await inbox.get()) is not None:
            await send({"type": "websocket.send", "text": text})
    finally:
        _members.discard(inbox)
        watcher.cancel()


async def _publish(receive: Receive, send: Send) -> None:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    text = body.decode()
    for inbox in _members:
        inbox.put_nowait(text)
    await _respond(send, b"ok")


async def _respond(send: Send, body: bytes) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})

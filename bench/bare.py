"""The ceiling: framework-free ASGI apps doing the scenarios' work with nothing in between.

``/ws/echo`` sends every frame back. ``/ws/group`` joins the one in-process group;
``POST /publish/async`` (or ``/publish/sync``: the same here) puts the body on every
member's queue, and each member's own task sends it. That per-connection task and
queue is the least any consumer-per-connection design has to do per delivery, so
the broadcast app is the fair floor for CPU per delivery.
"""

from __future__ import annotations

import asyncio

from hubbub.typing import Receive, Scope, Send

_members: set[asyncio.Queue[str | None]] = set()


async def application(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "http":
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
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ok"})

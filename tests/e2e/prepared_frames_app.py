"""A raw ASGI application that writes through ``hubbub.prepared_frames`` and through plain sends.

Each connection takes text commands (see ``COMMANDS``); what ``write`` returned where the
client cannot be told on the same socket (before accept, after close, after the client
left) goes to ``RESULTS`` under the connection's ``?key=``, which ``report`` sends back as
JSON on another connection.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

from hubbub.frames import prepare
from hubbub.typing import Message, Receive, Scope, Send

RESULTS: dict[str, Any] = {}
#: Largest count of frames ``flood`` writes while ``write`` keeps accepting them.
FLOOD_CAP = 2000
FLOOD_FRAME = 16 * 1024


def text(value: str) -> Message:
    return {"type": "websocket.send", "text": value}


def binary(value: bytes) -> Message:
    return {"type": "websocket.send", "bytes": value}


async def application(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "websocket":
        return
    extension = scope.get("extensions", {}).get("hubbub.prepared_frames")
    write = extension["write"] if extension else None
    key = parse_qs(scope["query_string"].decode()).get("key", [""])[0]
    await receive()  # websocket.connect
    if write is not None:
        RESULTS[f"{key}:before-accept"] = write(prepare(text("too early")))
    await send({"type": "websocket.accept"})
    while True:
        event = await receive()
        if event["type"] == "websocket.disconnect":
            if write is not None:
                RESULTS[f"{key}:after-disconnect"] = write(prepare(text("too late")))
            return
        command, _, argument = (event.get("text") or "").partition(" ")
        if command == "extension":
            await send(text("yes" if write is not None else "no"))
        elif command == "alternate":  # messages 0..n-1: even ones written, odd ones sent
            assert write is not None
            for i in range(int(argument)):
                message = text(f"message {i} – é ✓")
                if i % 2 == 0:
                    if not write(prepare(message)):
                        await send(text(f"write refused {i}"))
                else:
                    await send(message)
        elif command == "twice":  # the same message written then sent
            assert write is not None
            message = text(argument)
            write(prepare(message))
            await send(message)
        elif command == "sizes":  # binary messages of these sizes, written then sent
            assert write is not None
            for size in map(int, argument.split(",")):
                message = binary(bytes(i % 251 for i in range(size)))
                write(prepare(message))
                await send(message)
        elif command == "close":
            await send({"type": "websocket.close", "code": 1000})
            if write is not None:
                RESULTS[f"{key}:after-close"] = write(prepare(text("after close")))
            return
        elif command == "flood":
            assert write is not None
            frame = prepare(binary(b"x" * FLOOD_FRAME))
            written = 0
            while written < FLOOD_CAP and write(frame):
                written += 1
            RESULTS[f"{key}:flood"] = [written, write(frame)]  # the second refusal writes nothing either
            await send(text(f"end {written}"))  # waits until the client reads again
        elif command == "report":
            await send(text(json.dumps(RESULTS)))

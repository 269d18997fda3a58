"""The fastlane under uvicorn with real WebSocket clients: the same frames as the normal path, no handler woken.

tests/e2e/fastlane_app.py runs twice, with ``HUBBUB_FASTLANE=1`` and ``=0``; async and sync
members receive text, binary, JSON and per-member filtered group messages.
"""

from __future__ import annotations

import asyncio
import json
from contextlib import AsyncExitStack
from typing import Any

import pytest
import websockets

from tests.servers import ROOT, uvicorn

pytestmark = pytest.mark.timeout(90)

WAIT = 10  # seconds a frame may take on a loaded machine; waits end when it comes
COUNT = 20  # messages of each kind: 4 × COUNT + 1 stay under the layer's capacity (100), however slow a sync member
PATHS = ("/ws/member/?m=1", "/ws/member/?m=3", "/ws/sync-member/?m=2")


async def until_end(ws: Any) -> list[Any]:
    frames = []
    while True:
        frame = await asyncio.wait_for(ws.recv(), WAIT)
        if frame == "end":
            return frames
        frames.append(frame)


async def run(mode: str) -> tuple[list[list[Any]], dict[str, Any]]:
    with uvicorn("tests.e2e.fastlane_app:application", env={"HUBBUB_FASTLANE": mode}, cwd=ROOT) as server:
        async with AsyncExitStack() as sockets:
            members = [
                await sockets.enter_async_context(websockets.connect(server.ws_url + path, open_timeout=WAIT))
                for path in PATHS
            ]
            control = await sockets.enter_async_context(
                websockets.connect(server.ws_url + "/ws/control/", open_timeout=WAIT)
            )
            await control.send(f"publish {len(members)} {COUNT}")
            frames = await asyncio.gather(*(until_end(ws) for ws in members))
            assert await asyncio.wait_for(control.recv(), WAIT) == "published"
            await control.send("stats")
            stats = json.loads(await asyncio.wait_for(control.recv(), WAIT))
    return list(frames), stats


async def test_group_messages_reach_real_clients_identically_without_waking_a_handler():
    normal, normal_stats = await run("0")
    fast, fast_stats = await run("1")
    assert fast == normal
    first = normal[0]
    assert first[:4] == ["text 0", b"\x00\x00", '{"item": 0, "name": "\\u00e9"}', '{"n": 0}']
    assert len(first) == 4 * COUNT
    assert [len(frames) for frames in normal] == [4 * COUNT, 3 * COUNT + COUNT // 3 + 1, 3 * COUNT + COUNT // 2]
    assert fast_stats["in"] == normal_stats["in"]
    assert fast_stats["out"] == normal_stats["out"]
    assert sum(normal_stats["dispatched"].values()) == len(PATHS) * (4 * COUNT + 1)
    assert sum(fast_stats["dispatched"].values()) == 0, "every group message took the fastlane"

"""A hubbub.js page and the tutorial's chat in one group, across two uvicorn processes on Redis.

Issue 15 item 4 as it was met: the page's presence join (and its pub/sub messages) reached
the ``ChatConsumer`` sockets of the other process, which closed with 1011. Now they chat on,
and the page's endpoint skips the chat's ``chat.message`` with one log line.
"""

from __future__ import annotations

import asyncio
import json
from contextlib import AsyncExitStack, ExitStack
from typing import Any

import pytest
import websockets

from hubbub.layers.redis import RedisChannelLayer
from tests.servers import ROOT, uvicorn

pytestmark = pytest.mark.timeout(90)

WAIT = 10  # seconds a reply may take on a loaded machine; waits end when it comes


async def received(ws: Any) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), WAIT))


async def until(ws: Any, kind: str) -> list:
    frames = [await received(ws)]
    while frames[-1].get("type") != kind:
        frames.append(await received(ws))
    return frames


async def test_a_presence_page_on_one_process_leaves_the_chat_on_the_other_open(redis_url, redis_prefix):
    env = {"SHARED_REDIS": redis_url, "SHARED_REDIS_PREFIX": redis_prefix}
    try:
        await chat_beside_a_page(env)
    finally:
        layer = RedisChannelLayer(hosts=[redis_url], prefix=redis_prefix)
        await layer.flush()
        await layer.close_pools()


async def chat_beside_a_page(env: dict[str, str]) -> None:
    with ExitStack() as servers:
        chat_server, page_server = (
            servers.enter_context(uvicorn("tests.e2e.shared_group_app:application", env=env, cwd=ROOT))
            for _ in range(2)
        )
        async with AsyncExitStack() as sockets:
            ann, bob = [
                await sockets.enter_async_context(
                    websockets.connect(f"{chat_server.ws_url}/ws/chat/lobby/", open_timeout=WAIT)
                )
                for _ in range(2)
            ]
            page = await sockets.enter_async_context(
                websockets.connect(f"{page_server.ws_url}/ws/pubsub/", open_timeout=WAIT)
            )
            await page.send(json.dumps({"type": "subscribe", "group": "chat_lobby", "presence": {"name": "Pat"}}))
            assert [f["type"] for f in await until(page, "join")] == ["subscribed", "presence", "join"]
            await page.send(json.dumps({"type": "publish", "group": "chat_lobby", "data": "from the page"}))
            assert (await received(page))["data"] == "from the page"

            await ann.send(json.dumps({"message": "still here?"}))
            for client in (ann, bob):
                assert await received(client) == {"message": "still here?"}
            await page.send(json.dumps({"type": "publish", "group": "chat_lobby", "data": "after the chat"}))
            assert (await received(page))["data"] == "after the chat"  # the chat.message before it was skipped

            await page.close()  # its presence.leave reaches ann and bob
            await bob.send(json.dumps({"message": "yes"}))
            for client in (ann, bob):
                assert await received(client) == {"message": "yes"}
        chat_log, page_log = chat_server.output(), page_server.output()
    assert "No handler" not in chat_log + page_log and "Traceback" not in chat_log + page_log, chat_log + page_log
    assert page_log.count("skips group messages of type 'chat.message'") == 1, page_log

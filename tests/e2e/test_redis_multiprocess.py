"""The example chat on several uvicorn processes sharing Redis, with real WebSocket clients."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import AsyncExitStack, ExitStack
from pathlib import Path
from typing import Any

import pytest
import websockets
from websockets.protocol import State

from tests.servers import EXAMPLES, ROOT, Process, redis_server, uvicorn

pytestmark = pytest.mark.timeout(120)

TIMEOUT = 5.0


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A migrated SQLite database for the example site (sessions, users)."""
    path = str(tmp_path_factory.mktemp("redis-e2e") / "demo.sqlite3")
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v0", "--noinput"],
        cwd=EXAMPLES,
        check=True,
        timeout=60,
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT), str(EXAMPLES)]),
            "DJANGO_SETTINGS_MODULE": "demo.settings",
            "DEMO_DB": path,
        },
    )
    return path


def servers(count: int, redis_url: str, prefix: str, db: str) -> ExitStack:
    """``count`` uvicorn processes of the example site on one Redis; stopped when the stack closes.

    Their output is printed at the end, so pytest shows it when the test fails.
    """
    stack = ExitStack()
    env = {
        "DJANGO_SETTINGS_MODULE": "demo.settings",
        "DEMO_DB": db,
        "DJANGO_DEBUG": "0",
        "DEMO_REDIS": redis_url,
        "DEMO_REDIS_PREFIX": prefix,
    }
    processes = [uvicorn(env=env) for _ in range(count)]
    stack.callback(lambda: [print(f"--- server {i} output:\n{p.output()}") for i, p in enumerate(processes)])
    stack.processes = [stack.enter_context(process) for process in processes]  # type: ignore[attr-defined]
    return stack


async def join(stack: AsyncExitStack, server: Process, room: str) -> Any:
    url = f"{server.ws_url}/ws/chat/{room}/"  # type: ignore[attr-defined]
    socket = await stack.enter_async_context(
        websockets.connect(url, origin=server.url, open_timeout=TIMEOUT, close_timeout=1)  # type: ignore[attr-defined]
    )
    assert (await recv(socket))["joined"] == room
    return socket


async def recv(socket: Any, timeout: float = TIMEOUT) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(socket.recv(), timeout))


async def say(socket: Any, text: str) -> None:
    await socket.send(json.dumps({"message": text}))


@pytest.fixture
def three_servers(redis_url: str, redis_prefix: str, demo_db: str) -> Iterator[list[Process]]:
    with servers(3, redis_url, redis_prefix, demo_db) as stack:
        yield stack.processes  # type: ignore[attr-defined]


async def test_message_from_one_process_reaches_clients_on_the_other_two(three_servers):
    room = "room" + uuid.uuid4().hex[:8]
    async with AsyncExitStack() as stack:
        a, b, c = [await join(stack, server, room) for server in three_servers]
        await say(a, "hello from A")
        for socket in (a, b, c):
            assert (await recv(socket))["message"] == "hello from A"
        await say(c, "and from C")
        for socket in (a, b, c):
            assert (await recv(socket))["message"] == "and from C"


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")
async def test_clients_keep_receiving_after_redis_is_killed_and_restarted(demo_db):
    with redis_server() as redis, servers(2, redis.url, "e2e", demo_db) as processes:  # type: ignore[attr-defined]
        first, second = processes.processes  # type: ignore[attr-defined]
        room = "room" + uuid.uuid4().hex[:8]
        async with AsyncExitStack() as stack:
            a, b = await join(stack, first, room), await join(stack, second, room)
            await say(a, "before")
            assert (await recv(b))["message"] == "before"

            redis.kill()
            await say(a, "during the outage")  # lost (and counted), but the connection stays up
            await asyncio.sleep(0.5)
            redis.start()

            for attempt in range(100):  # until both processes are back in the room on the new Redis
                await say(a, f"probe {attempt}")
                try:
                    if (await recv(b, 0.2))["message"].startswith("probe"):
                        break
                except asyncio.TimeoutError:
                    continue
            else:
                raise AssertionError("B never received from A after Redis came back")
            await say(a, "after")
            while (message := (await recv(b))["message"]) != "after":
                assert message.startswith("probe") or message == "during the outage"
            assert a.state is State.OPEN and b.state is State.OPEN
        logs = Path(first.log_file.name).read_text() + Path(second.log_file.name).read_text()
        assert "Lost connection to Redis" in logs
        assert "Reconnected to Redis" in logs
        assert logs.count("Lost connection to Redis") <= 4  # once per process connection set, not per message

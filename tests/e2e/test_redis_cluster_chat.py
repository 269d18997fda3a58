"""The example chat as two uvicorn processes on a Redis Cluster; a master is killed mid-chat.

Two real WebSocket clients, one per process, in one room. The master holding the
room's group is killed (SIGKILL); its replica takes over, and the chat goes on over
the same sockets, with no process restarted.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from contextlib import AsyncExitStack
from typing import Any

import pytest

from hubbub.layers.redis import RedisChannelLayer
from tests.e2e.test_redis_multiprocess import demo_db, join, recv, say  # noqa: F401  (demo_db is a fixture)
from tests.redis_cluster import redis_cluster
from tests.servers import uvicorn

pytestmark = pytest.mark.timeout(180)


async def heard(socket: Any, text: str, within: float) -> bool:
    """Whether ``text`` arrives on ``socket`` within ``within`` seconds (other messages skipped)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            message = await recv(socket, timeout=max(0.05, deadline - time.monotonic()))
        except asyncio.TimeoutError:
            return False
        if message.get("message") == text:
            return True
    return False


async def test_chat_across_two_processes_survives_a_master_killed_mid_chat(demo_db, redis_prefix):  # noqa: F811
    room = "room" + uuid.uuid4().hex[:8]
    with redis_cluster() as cluster:
        env = {
            "DJANGO_SETTINGS_MODULE": "demo.settings",
            "DEMO_DB": demo_db,
            "DJANGO_DEBUG": "0",
            "DEMO_REDIS_CLUSTER": ",".join(cluster.urls),
            "DEMO_REDIS_PREFIX": redis_prefix,
        }
        servers = [uvicorn(env=env) for _ in range(2)]
        try:
            for server in servers:
                server.start()
            async with AsyncExitStack() as stack:
                alice, bob = [await join(stack, server, room) for server in servers]
                await say(alice, "before, from alice")
                assert await heard(bob, "before, from alice", within=5)
                await say(bob, "before, from bob")
                assert await heard(alice, "before, from bob", within=5)

                keys = RedisChannelLayer(cluster=cluster.urls, prefix=redis_prefix).keys  # the same key layout
                master = cluster.master_of(cluster.slot_of(keys.members(f"chat_{room}")))
                replica = cluster.replica_of(master)
                cluster.kill(master)
                await say(alice, "during the failover")  # may be lost: the process logs and counts it
                await asyncio.to_thread(cluster.wait_master, replica)

                # The chat goes on over the same sockets: once a line gets through, every line does.
                deadline, attempt = time.monotonic() + 60, 0
                while True:
                    attempt += 1
                    await say(alice, f"probe {attempt}")
                    if await heard(bob, f"probe {attempt}", within=1.0):
                        break
                    assert time.monotonic() < deadline, "the chat did not resume after the failover"
                for index in range(5):
                    await say(alice, f"after {index}, from alice")
                    assert await heard(bob, f"after {index}, from alice", within=5)
                    await say(bob, f"after {index}, from bob")
                    assert await heard(alice, f"after {index}, from bob", within=5)
        finally:
            for index, server in enumerate(servers):
                server.stop()
                print(f"--- server {index} output:\n{server.output()}")

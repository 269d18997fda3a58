"""The fastlane under uvicorn with real WebSocket clients: the same frames as the normal path, no handler woken.

tests/e2e/fastlane_app.py runs with ``HUBBUB_FASTLANE=1`` and ``=0`` side by side; async and
sync members receive text, binary, JSON and per-member filtered group messages. On the
in-memory layer one process serves both uvicorn's default protocol (websockets-sansio) and
hubbub's (``hubbub.uvicorn_ws``, whose prepared-frames writer the fastlane then uses); on the
Redis layers two processes share the group, with members on both and the publisher on one.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import AsyncExitStack, ExitStack, contextmanager
from typing import Any

import pytest
import websockets

from tests.servers import ROOT, Process, uvicorn, wait_for_port

pytestmark = pytest.mark.timeout(90)

WAIT = 10  # seconds a frame may take on a loaded machine; waits end when it comes
COUNT = 20  # messages of each kind: 4 × COUNT + 1 stay under the layer's capacity (100), however slow a sync member
PATHS = ("/ws/member/?m=1", "/ws/member/?m=3", "/ws/sync-member/?m=2")
#: What each member of PATHS receives: every message, then the filtered ones it accepts.
EXPECTED = [4 * COUNT, 3 * COUNT + COUNT // 3 + 1, 3 * COUNT + COUNT // 2]
PROTOCOLS = {
    "sansio": ["--ws", "websockets-sansio"],  # uvicorn's default: no prepared-frames extension
    "hubbub": ["--ws", "hubbub.uvicorn_ws:WebSocketProtocol"],
}
MODES = ("0", "1")  # HUBBUB_FASTLANE: the normal path, the fastlane


@contextmanager
def serving(count: int, protocol: str, env: dict[str, str], prefix: str = "") -> Iterator[dict[str, list[Process]]]:
    """``count`` processes of the app per mode, all started at once (their start-up dominates the time).

    The processes of one mode share the Redis key prefix ``prefix`` + mode, so their group.
    """
    with ExitStack() as stack:
        started: dict[str, list[Process]] = {mode: [] for mode in MODES}
        for mode in MODES:
            for _ in range(count):
                env_mode = {**env, "HUBBUB_FASTLANE": mode, "FASTLANE_REDIS_PREFIX": prefix + mode}
                server = uvicorn(
                    "tests.e2e.fastlane_app:application", env=env_mode, cwd=ROOT, extra=PROTOCOLS[protocol]
                )
                stack.callback(server.stop)
                started[mode].append(server.start(wait=False))
        for server in (server for servers in started.values() for server in servers):
            try:
                wait_for_port(server.port, proc=server.proc)
            except (RuntimeError, TimeoutError):
                raise RuntimeError(f"{server.args} did not start:\n{server.output()}") from None
        yield started


async def until_end(ws: Any) -> list[Any]:
    frames = []
    while True:
        frame = await asyncio.wait_for(ws.recv(), WAIT)
        if frame == "end":
            return frames
        frames.append(frame)


async def ask(control: Any, command: str) -> str:
    await control.send(command)
    return await asyncio.wait_for(control.recv(), WAIT)


async def run(servers: list[Process]) -> tuple[list[list[Any]], list[dict[str, Any]]]:
    """Members on every server, a publish from the first: each member's frames, each server's stats."""
    async with AsyncExitStack() as sockets:

        async def connect(url: str) -> Any:
            return await sockets.enter_async_context(websockets.connect(url, open_timeout=WAIT))

        members = [await connect(server.ws_url + path) for server in servers for path in PATHS]  # type: ignore[attr-defined]
        controls = [await connect(server.ws_url + "/ws/control/") for server in servers]  # type: ignore[attr-defined]
        for control in controls[1:]:
            assert await ask(control, f"idle {len(PATHS)}") == "idle"
        await controls[0].send(f"publish {len(PATHS)} {COUNT}")
        frames = await asyncio.gather(*(until_end(ws) for ws in members))
        assert await asyncio.wait_for(controls[0].recv(), WAIT) == "published"
        stats = [json.loads(await ask(control, "stats")) for control in controls]
    return list(frames), stats


async def both_paths(servers: dict[str, list[Process]]) -> list[dict[str, Any]]:
    """The same frames in the same order on both paths, nothing lost, no handler dispatched on the fastlane.

    Returns each fastlane server's stats.
    """
    normal, normal_stats = await run(servers["0"])
    fast, fast_stats = await run(servers["1"])
    assert fast == normal
    first = normal[0]
    assert first[:4] == ["text 0", b"\x00\x00", '{"item": 0, "name": "\\u00e9"}', '{"n": 0}']
    assert [len(frames) for frames in normal] == EXPECTED * len(servers["0"])
    assert normal == normal[: len(PATHS)] * len(servers["0"]), "members in every process get the same frames"
    for normal_server, fast_server in zip(normal_stats, fast_stats, strict=True):
        assert fast_server["in"] == normal_server["in"]
        assert fast_server["out"] == normal_server["out"]
        assert sum(normal_server["dispatched"].values()) == len(PATHS) * (4 * COUNT + 1)
        assert sum(fast_server["dispatched"].values()) == 0, "every group message took the fastlane"
        assert normal_server["prepared"] == 0, "the normal path sends, it never writes prepared frames"
    return fast_stats


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_group_messages_reach_real_clients_identically_without_waking_a_handler(protocol):
    with serving(1, protocol, {}) as servers:
        [fast_stats] = await both_paths(servers)
    if protocol == "hubbub":
        assert fast_stats["prepared"] > 0, "the fastlane wrote through hubbub.uvicorn_ws's prepared-frames writer"
    else:
        assert fast_stats["prepared"] == 0


@pytest.mark.parametrize("layer", ["redis", "pubsub"])
async def test_redis_group_messages_reach_members_in_both_processes_identically_without_waking_a_handler(
    layer, redis_url, redis_prefix
):
    with serving(2, "hubbub", {"FASTLANE_LAYER": layer, "FASTLANE_REDIS": redis_url}, redis_prefix) as servers:
        fast_stats = await both_paths(servers)
    assert all(stats["prepared"] > 0 for stats in fast_stats), "both processes wrote prepared frames"

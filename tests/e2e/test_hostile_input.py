"""Hostile and bursty clients against a real uvicorn process: bad frames, floods, bursts, rate limits.

The server runs with the flags docs/deployment.md gives (``--ws hubbub.uvicorn_ws:WebSocketProtocol
--ws-max-size 1048576``); one more runs with uvicorn's default 16 MiB frame limit, so
that hubbub's own 1 MiB bound on JSON frames is what refuses a larger one. Log lines are
waited for (polling the server's output until a deadline), never slept for.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from tests.servers import ROOT, Process, uvicorn

pytestmark = pytest.mark.timeout(180)

REFUSED = "refused a WebSocket frame"
ENV = {"DJANGO_SETTINGS_MODULE": "tests.settings"}
APP = "tests.e2e.hostile_app:application"


@pytest.fixture(scope="module")
def server():
    with uvicorn(
        APP, cwd=ROOT, env=ENV, extra=["--ws", "hubbub.uvicorn_ws:WebSocketProtocol", "--ws-max-size", "1048576"]
    ) as process:
        yield process


@pytest.fixture(scope="module")
def roomy_server():
    """uvicorn's default frame limit (16 MiB): hubbub's own bounds are the first to refuse."""
    with uvicorn(APP, cwd=ROOT, env=ENV, extra=["--ws", "hubbub.uvicorn_ws:WebSocketProtocol"]) as process:
        yield process


def refused_lines(server: Process, needle: str = "") -> list:
    return [line for line in server.output().splitlines() if REFUSED in line and needle in line]


async def wait_for_lines(server: Process, needle: str, count: int = 1, timeout: float = 20.0) -> list:
    """The server's refusal lines containing ``needle``, once there are ``count`` of them."""
    deadline = time.monotonic() + timeout
    while True:
        lines = refused_lines(server, needle)
        if len(lines) >= count or time.monotonic() > deadline:
            return lines
        await asyncio.sleep(0.05)


async def close_code(ws, send: Callable[[], object]) -> tuple:
    """Send, then read until the server closes: (code, reason)."""
    await send()
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            await asyncio.wait_for(ws.recv(), 30)
    return closed.value.rcvd.code, closed.value.rcvd.reason


async def still_serving(server: Process) -> None:
    async with websockets.connect(server.ws_url + "/ws/json/") as ws:
        await ws.send('{"alive": true}')
        assert json.loads(await asyncio.wait_for(ws.recv(), 30)) == {"alive": True}


# -- item 10.1 / 15.7: refused frames get their close code and one log line ------------------


async def test_2_mib_frame_is_closed_1009_by_the_server_and_logged_as_its_size_limit(server):
    async with websockets.connect(server.ws_url + "/ws/echo/", max_size=None) as ws:
        code, _ = await close_code(ws, lambda: ws.send("x" * (2 * 1024 * 1024)))
        port = ws.local_address[1]
    assert code == 1009
    lines = await wait_for_lines(server, f"client 127.0.0.1:{port},")
    assert len(lines) == 1, server.output()[-3000:]
    assert "the server refused a WebSocket frame: code 1009 (frame over the server's size limit" in lines[0]
    assert "path /ws/echo/" in lines[0]
    await still_serving(server)


async def test_2_mib_json_frame_under_a_roomy_server_is_closed_1009_by_hubbubs_own_bound(roomy_server):
    async with websockets.connect(roomy_server.ws_url + "/ws/json/", max_size=None) as ws:
        code, reason = await close_code(ws, lambda: ws.send(json.dumps(["x" * (2 * 1024 * 1024)])))
    assert (code, reason) == (1009, "frame over 1048576 bytes")
    lines = await wait_for_lines(roomy_server, "code 1009 (frame over 1048576 bytes)")
    assert len(lines) == 1 and "hubbub refused" in lines[0] and "path /ws/json/" in lines[0]
    await still_serving(roomy_server)
    # The disconnect that follows hubbub's own 1009 close is not mistaken for the server's refusal.
    assert "the server refused" not in roomy_server.output()
    assert "more like it" not in roomy_server.output()


@pytest.mark.parametrize("kind", ["json", "sync-json"])
@pytest.mark.parametrize(
    "case, frame, code, reason",
    [
        ("bad", "{oops", 1007, "frame is not valid JSON"),
        ("deep", "[" * 2000 + "]" * 2000, 1007, "JSON nested more than 128 deep"),  # json.loads alone: 1011
        ("unclosed", "[" * 100_000, 1007, "JSON nested more than 128 deep"),
        ("binary", b"\x00\x01", 1003, "binary frame received"),
    ],
)
async def test_a_bad_frame_to_a_json_consumer_closes_with_its_code_and_one_line_no_traceback(
    server, kind, case, frame, code, reason
):
    path = f"/ws/{kind}/{case}/"
    async with websockets.connect(server.ws_url + path) as ws:
        got_code, got_reason = await close_code(ws, lambda: ws.send(frame))
        port = ws.local_address[1]
    assert got_code == code and got_reason.startswith(reason)
    lines = await wait_for_lines(server, f"path {path},")
    assert len(lines) == 1, server.output()[-3000:]
    assert f"hubbub refused a WebSocket frame: code {code} ({reason}" in lines[0]
    assert f"client 127.0.0.1:{port}," in lines[0]
    assert "Traceback" not in server.output() and "RecursionError" not in server.output()
    await still_serving(server)


async def test_deep_frame_to_pubsub_gets_an_error_reply_and_the_connection_stays_open(server):
    async with websockets.connect(server.ws_url + "/ws/pubsub/") as ws:
        await ws.send("[" * 2000 + "]" * 2000)
        assert json.loads(await asyncio.wait_for(ws.recv(), 30))["code"] == "too_deep"
        await ws.send(json.dumps({"type": "ping"}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 30)) == {"type": "pong"}
    assert await wait_for_lines(server, "error too_deep")


async def test_a_flood_of_1000_bad_frames_over_many_connections_writes_a_bounded_number_of_lines(roomy_server):
    """600 connections each send one bad frame (each closed 1007), 8 pub/sub sockets 50 bad frames each."""
    before = len(refused_lines(roomy_server))
    started = time.monotonic()

    async def one_bad_json_frame() -> int:
        async with websockets.connect(roomy_server.ws_url + "/ws/json/") as ws:
            code, _ = await close_code(ws, lambda: ws.send("{flood"))
            return code

    async def pubsub_flood() -> int:
        async with websockets.connect(roomy_server.ws_url + "/ws/pubsub/") as ws:
            for _ in range(50):
                await ws.send("not json either")
            return sum([json.loads(await asyncio.wait_for(ws.recv(), 30))["code"] == "bad_json" for _ in range(50)])

    codes = []
    for _ in range(12):  # 50 connections at a time
        codes += await asyncio.gather(*(one_bad_json_frame() for _ in range(50)))
    answered = await asyncio.gather(*(pubsub_flood() for _ in range(8)))
    elapsed = time.monotonic() - started
    assert codes == [1007] * 600 and answered == [50] * 8
    await wait_for_lines(roomy_server, "error bad_json")
    lines = refused_lines(roomy_server)[before:]
    # Two kinds of refusal (1007 from JsonEcho, bad_json from PubSubConsumer): one line each
    # per 10 s interval, whatever the number of frames, connections or clients.
    intervals = 1 + int(elapsed // 10) + 1
    assert 2 <= len(lines) <= 2 * intervals, lines
    await still_serving(roomy_server)


# -- item 10.6: a burst from one client reaches every member of the room ------------------------


async def test_a_burst_of_200_from_one_client_reaches_all_300_members_of_the_room(server):
    """Before the fix every member got 102 of 200 (capacity 100), the rest dropped as channel_full."""
    members, burst = 300, 200
    sockets = []
    try:
        for _ in range(members):
            sockets.append(await websockets.connect(server.ws_url + "/ws/room/", max_queue=None))
        await sockets[0].send(json.dumps({"count": True}))
        assert json.loads(await asyncio.wait_for(sockets[0].recv(), 30)) == {"members": members}
        await asyncio.gather(*(sockets[0].send(json.dumps({"n": n})) for n in range(burst)))

        async def collect(ws) -> list:
            return [json.loads(await asyncio.wait_for(ws.recv(), 60))["n"] for _ in range(burst)]

        received = await asyncio.gather(*(collect(ws) for ws in sockets))
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    assert all(got == list(range(burst)) for got in received)
    assert "full; message" not in server.output()


# -- item 10.6: the per-connection inbound rate limit -------------------------------------------


@pytest.mark.parametrize("path", ["/ws/limited/", "/ws/sync-limited/"])
async def test_a_client_within_the_rate_limit_is_served(server, path):
    async with websockets.connect(server.ws_url + path) as ws:
        for n in range(15):  # under the burst of 20 frames
            await ws.send(f"m{n}")
            assert await asyncio.wait_for(ws.recv(), 30) == f"m{n}"


@pytest.mark.parametrize("path", ["/ws/limited/", "/ws/sync-limited/"])
async def test_a_client_over_the_frame_rate_is_closed_1008_and_logged_once(server, path):
    async with websockets.connect(server.ws_url + path) as ws:
        for n in range(100):
            await ws.send(f"m{n}")
        echoed = []
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                echoed.append(await asyncio.wait_for(ws.recv(), 30))
    assert closed.value.rcvd.code == 1008
    assert closed.value.rcvd.reason == "over the inbound rate limit (20 frames/s and 4096 bytes/s)"
    assert 20 <= len(echoed) < 100 and echoed == [f"m{n}" for n in range(len(echoed))]
    assert await wait_for_lines(server, "code 1008 (over the inbound rate limit")


async def test_a_frame_over_the_byte_rate_is_closed_1008(server):
    async with websockets.connect(server.ws_url + "/ws/limited/") as ws:
        code, reason = await close_code(ws, lambda: ws.send("x" * 5000))
    assert code == 1008 and "4096 bytes/s" in reason


# -- the example site has the limit on ------------------------------------------------------------


@pytest.fixture(scope="module")
def example_site(tmp_path_factory):
    env = {
        "DJANGO_SETTINGS_MODULE": "demo.settings",
        "DJANGO_DEBUG": "0",
        "DEMO_DB": str(tmp_path_factory.mktemp("demo") / "db.sqlite3"),
    }
    with uvicorn(env=env, extra=["--ws", "hubbub.uvicorn_ws:WebSocketProtocol", "--ws-max-size", "1048576"]) as process:
        yield process


@pytest.mark.parametrize(
    "path, frame",
    [
        ("/ws/echo/", "hello"),  # the sync echo consumer
        ("/ws/", '{"ask": "anything"}'),  # the JSON request/response consumer
    ],
)
async def test_the_example_sites_sockets_close_a_flooding_client_with_1008(example_site, path, frame):
    """The demo consumers take a burst of 10 frames, then 10 a second: 60 at once gets the socket closed."""
    async with websockets.connect(example_site.ws_url + path) as ws:
        for _ in range(60):
            await ws.send(frame)
        replies = []
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                replies.append(await asyncio.wait_for(ws.recv(), 30))
    assert closed.value.rcvd.code == 1008
    assert closed.value.rcvd.reason == "over the inbound rate limit (10 frames/s and 16384 bytes/s)"
    assert 10 <= len(replies) < 60
    limit = "code 1008 (over the inbound rate limit (10 frames/s and 16384 bytes/s))"
    assert await wait_for_lines(example_site, f"{limit}, path {path},")


async def test_deeply_nested_json_to_the_example_site_is_answered_and_the_socket_stays_open(example_site):
    async with websockets.connect(example_site.ws_url + "/ws/") as ws:
        await ws.send("[" * 2000 + "]" * 2000)  # 4,000 bytes: under the site's 4 KiB frame limit
        assert json.loads(await asyncio.wait_for(ws.recv(), 30)) == {
            "status": "error",
            "error": "JSON nested more than 128 deep",
        }
        await ws.send('{"still": "here"}')
        assert json.loads(await asyncio.wait_for(ws.recv(), 30)) == {"status": "OK", "data": {"still": "here"}}
    assert "Traceback" not in example_site.output()
    assert await wait_for_lines(example_site, "error bad_frame (JSON nested more than 128 deep), path /ws/,")

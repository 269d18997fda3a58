"""The core through a real uvicorn process and real WebSocket clients."""

from __future__ import annotations

import asyncio
import json
import socket

import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.servers import ROOT, uvicorn

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(scope="module")
def server():
    process = uvicorn("tests.e2e.core_app:application", cwd=ROOT, env={"DJANGO_SETTINGS_MODULE": "tests.settings"})
    with process:
        yield process


async def test_echo_text_and_binary(server):
    async with websockets.connect(server.ws_url + "/ws/echo/") as ws:
        await ws.send("hello")
        assert await ws.recv() == "hello"
        await ws.send(b"\x00\xff")
        assert await ws.recv() == b"\x00\xff"


async def test_sync_consumer_echo(server):
    async with websockets.connect(server.ws_url + "/ws/sync-echo/") as ws:
        for n in range(20):
            await ws.send(f"m{n}")
            assert await ws.recv() == f"m{n}"


async def test_group_chat_reaches_the_room_and_only_the_room(server):
    url = server.ws_url + "/ws/chat/"
    async with (
        websockets.connect(url + "red/") as red1,
        websockets.connect(url + "red/") as red2,
        websockets.connect(url + "blue/") as blue,
    ):
        await red1.send(json.dumps({"text": "hi red"}))
        assert json.loads(await red1.recv()) == {"text": "hi red"}
        assert json.loads(await red2.recv()) == {"text": "hi red"}
        await blue.send(json.dumps({"text": "hi blue"}))
        assert json.loads(await blue.recv()) == {"text": "hi blue"}
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(red2.recv(), 0.2)


async def test_close_from_the_server_carries_code_and_reason(server):
    async with websockets.connect(server.ws_url + "/ws/echo/") as ws:
        await ws.send("close")
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd.code == 4000
        assert closed.value.rcvd.reason == "you asked"


async def test_handler_error_closes_with_1011_and_the_server_keeps_serving(server):
    async with websockets.connect(server.ws_url + "/ws/echo/") as ws:
        await ws.send("raise")
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd.code == 1011
    assert "handler failed on purpose" in server.output()
    async with websockets.connect(server.ws_url + "/ws/echo/") as ws:
        await ws.send("still here")
        assert await ws.recv() == "still here"


async def test_group_message_handler_error_also_closes_with_1011(server):
    async with websockets.connect(server.ws_url + "/ws/chat/failing/") as ws:
        await ws.send(json.dumps({"fail_in_group": True}))
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd.code == 1011
    assert "group handler failed on purpose" in server.output()


async def test_unknown_path_is_refused_at_handshake_and_the_server_keeps_serving(server):
    with pytest.raises(InvalidStatus) as refused:
        async with websockets.connect(server.ws_url + "/ws/nowhere/"):
            pass
    assert refused.value.response.status_code == 403
    assert "WebSocket '/ws/nowhere/' refused (403): no route matches this path." in server.output()
    async with websockets.connect(server.ws_url + "/ws/echo/") as ws:
        await ws.send("ok")
        assert await ws.recv() == "ok"


async def test_non_json_and_binary_frames_to_a_json_consumer_close_with_clear_codes(server):
    async with websockets.connect(server.ws_url + "/ws/chat/json/") as ws:
        await ws.send("{oops")
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd.code == 1007
        assert "not valid JSON" in closed.value.rcvd.reason
    async with websockets.connect(server.ws_url + "/ws/chat/json/") as ws:
        await ws.send(b"\x01")
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd.code == 1003


async def test_burst_of_10000_group_messages_loses_nothing(server):
    url = server.ws_url + "/ws/chat/"
    async with (
        websockets.connect(url + "burst/") as one,
        websockets.connect(url + "burst/") as two,
        websockets.connect(url + "publisher/") as publisher,
    ):
        await publisher.send(json.dumps({"burst": 10_000, "to": "chat_burst"}))

        async def collect(ws):
            return [json.loads(await ws.recv())["n"] for _ in range(10_000)]

        got_one, got_two = await asyncio.wait_for(asyncio.gather(collect(one), collect(two)), 60)
        assert got_one == list(range(10_000))
        assert got_two == list(range(10_000))


async def test_10000_frame_echo_burst_comes_back_in_order(server):
    async with websockets.connect(server.ws_url + "/ws/echo/") as ws:

        async def send_all():
            for n in range(10_000):
                await ws.send(str(n))

        sender = asyncio.ensure_future(send_all())
        got = [int(await asyncio.wait_for(ws.recv(), 10)) for _ in range(10_000)]
        await sender
        assert got == list(range(10_000))


async def test_client_vanishing_mid_send_leaves_no_member_and_server_serves_on(server):
    url = server.ws_url + "/ws/chat/vanish/"
    errors_before = server.output().count("Exception in ASGI application")
    async with websockets.connect(url) as watcher:
        doomed = await websockets.connect(url)
        await watcher.send(json.dumps({"stats": "chat_vanish"}))
        assert json.loads(await watcher.recv()) == {"members": 2}
        async with websockets.connect(server.ws_url + "/ws/chat/vanish-publisher/") as publisher:
            await publisher.send(json.dumps({"burst": 2000, "to": "chat_vanish"}))
        await asyncio.wait_for(doomed.recv(), 10)  # the burst is reaching it
        # Drop the TCP connection without a closing handshake while messages are in flight.
        doomed.transport.get_extra_info("socket").setsockopt(
            socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
        )
        doomed.transport.abort()
        received = [json.loads(await asyncio.wait_for(watcher.recv(), 10))["n"] for _ in range(2000)]
        assert received == list(range(2000))
        for _ in range(50):
            await watcher.send(json.dumps({"stats": "chat_vanish"}))
            if json.loads(await watcher.recv()) == {"members": 1}:
                break
            await asyncio.sleep(0.1)
        else:
            pytest.fail("the vanished client is still a member of the group")
    assert server.output().count("Exception in ASGI application") == errors_before, "a vanished client is not an error"

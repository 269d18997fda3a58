"""hubbub.uvicorn_ws in a real uvicorn process: prepared frames written beside plain sends.

The application (prepared_frames_app.py) writes through ``hubbub.prepared_frames`` and
sends the usual way, in turn; clients are websockets' own, or a raw socket where the
bytes on the wire are what is checked. One test installs the lowest supported uvicorn
(``pip install --target``, cached in the temporary directory) and runs the server on it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest
import websockets
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.frames import Frame, Opcode

from hubbub.frames import prepare
from hubbub.uvicorn_ws import SUPPORTED_UVICORN
from tests.e2e.prepared_frames_app import FLOOD_FRAME
from tests.servers import ROOT, Process, uvicorn

pytestmark = pytest.mark.timeout(120)

APP = "tests.e2e.prepared_frames_app:application"
PROTOCOL = ["--ws", "hubbub.uvicorn_ws:WebSocketProtocol"]
DOCUMENTED = [*PROTOCOL, "--ws-max-size", "1048576", "--ws-per-message-deflate", "false"]
TIMEOUT = 30


@pytest.fixture(scope="module")
def server():
    with uvicorn(APP, cwd=ROOT, extra=DOCUMENTED) as process:
        yield process


@pytest.fixture(scope="module")
def deflate_server():
    """uvicorn's default: permessage-deflate offered."""
    with uvicorn(APP, cwd=ROOT, extra=PROTOCOL) as process:
        yield process


async def recv(ws) -> str | bytes:
    return await asyncio.wait_for(ws.recv(), TIMEOUT)


async def report(server: Process) -> dict:
    async with websockets.connect(server.ws_url + "/") as ws:
        await ws.send("report")
        return json.loads(await recv(ws))


async def alternate(ws, count: int = 20) -> None:
    """Even messages written, odd ones sent: all arrive, in order, the same text."""
    await ws.send(f"alternate {count}")
    assert [await recv(ws) for _ in range(count)] == [f"message {i} – é ✓" for i in range(count)]


class RawClient:
    """A WebSocket client on a bare socket: what the server writes, byte for byte."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, server: Process, extensions: str = "") -> RawClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", int(server.ws_url.rsplit(":", 1)[1]))
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            "GET / HTTP/1.1",
            "Host: 127.0.0.1",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
        ]
        if extensions:
            lines.append(f"Sec-WebSocket-Extensions: {extensions}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        response = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
        assert response.startswith(b"HTTP/1.1 101"), response
        return cls(reader, writer)

    def send(self, text: str) -> None:
        self.writer.write(Frame(Opcode.TEXT, text.encode()).serialize(mask=True))

    async def read(self, size: int) -> bytes:
        return await asyncio.wait_for(self.reader.readexactly(size), TIMEOUT)

    async def frame(self) -> tuple[int, bytes]:
        """The next frame from the server (unmasked, final): its opcode and payload."""
        first, length = await self.read(2)
        if length == 126:
            length = int.from_bytes(await self.read(2), "big")
        elif length == 127:
            length = int.from_bytes(await self.read(8), "big")
        return first & 0x0F, await self.read(length)

    def close(self) -> None:
        self.writer.close()


def text_frame(text: str) -> bytes:
    return prepare({"type": "websocket.send", "text": text}).data


# -- the extension and plain sends, side by side ------------------------------------------------


async def test_the_scope_offers_prepared_frames_with_the_protocol_and_not_without(server):
    async with websockets.connect(server.ws_url + "/") as ws:
        await ws.send("extension")
        assert await recv(ws) == "yes"
    with uvicorn(APP, cwd=ROOT, extra=["--ws", "websockets-sansio"]) as plain:
        async with websockets.connect(plain.ws_url + "/") as ws:
            await ws.send("extension")
            assert await recv(ws) == "no"


async def test_written_and_sent_messages_arrive_in_order(server):
    async with websockets.connect(server.ws_url + "/") as ws:
        await alternate(ws, 50)


async def test_a_written_frame_is_byte_for_byte_the_frame_a_plain_send_writes(server):
    client = await RawClient.connect(server)
    try:
        client.send("twice héllo ✓")
        assert await client.read(2 * len(text_frame("héllo ✓"))) == text_frame("héllo ✓") * 2
        sizes = [0, 125, 126, 65535, 65536]
        client.send("sizes " + ",".join(map(str, sizes)))
        for size in sizes:
            frame = prepare({"type": "websocket.send", "bytes": bytes(i % 251 for i in range(size))}).data
            assert await client.read(2 * len(frame)) == frame * 2, size
    finally:
        client.close()


async def test_write_refuses_before_accept_after_close_and_after_the_client_left(server):
    key = uuid.uuid4().hex
    async with websockets.connect(server.ws_url + f"/?key={key}-closed") as ws:
        await ws.send("close")
        with pytest.raises(websockets.ConnectionClosedOK):
            await recv(ws)  # the app's close, and no frame before it
    async with websockets.connect(server.ws_url + f"/?key={key}-left") as ws:
        await alternate(ws, 2)
    results = await report(server)
    while f"{key}-left:after-disconnect" not in results:
        await asyncio.sleep(0.05)
        results = await report(server)
    assert results[f"{key}-closed:before-accept"] is False
    assert results[f"{key}-closed:after-close"] is False
    assert results[f"{key}-left:after-disconnect"] is False


async def test_write_refuses_while_the_client_is_not_reading_and_writes_nothing_then(server):
    """The client stops reading: writes are taken until the transport pauses, then refused;
    the client gets exactly the frames taken, then the plain send that waited for it."""
    key = uuid.uuid4().hex
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", int(server.ws_url.rsplit(":", 1)[1])))
    # max_queue: websockets stops reading the socket once 4 messages wait unread.
    async with websockets.connect(server.ws_url + f"/?key={key}", sock=sock, max_queue=4, max_size=None) as ws:
        await ws.send("flood")
        results = await report(server)
        while f"{key}:flood" not in results:
            await asyncio.sleep(0.05)
            results = await report(server)
        written, written_again = results[f"{key}:flood"]
        assert 0 < written < 2000, "the transport never paused"
        assert written_again is False
        frames = 0
        while (message := await recv(ws)) != f"end {written}":
            assert message == b"x" * FLOOD_FRAME
            frames += 1
        assert frames == written


# -- keepalive pings, from one timer per tick --------------------------------------------------------


@pytest.fixture(scope="module")
def pinging_server():
    with uvicorn(APP, cwd=ROOT, extra=[*DOCUMENTED, "--ws-ping-interval", "0.5", "--ws-ping-timeout", "2"]) as process:
        yield process


async def test_clients_answering_pings_are_pinged_again_and_stay_connected(pinging_server):
    clients = [await RawClient.connect(pinging_server) for _ in range(3)]
    try:
        for _ in range(3):
            for client in clients:
                opcode, payload = await client.frame()
                assert opcode == Opcode.PING.value and len(payload) == 4
                client.writer.write(Frame(Opcode.PONG, payload).serialize(mask=True))
        clients[0].send("twice still here")
        texts: list[tuple[int, bytes]] = []
        for _ in range(8):  # the two echoes, and any ping that comes between them (answered)
            opcode, payload = await clients[0].frame()
            if opcode == Opcode.PING.value:
                clients[0].writer.write(Frame(Opcode.PONG, payload).serialize(mask=True))
                continue
            texts.append((opcode, payload))
            if len(texts) == 2:
                break
        assert texts == [(Opcode.TEXT.value, b"still here")] * 2
    finally:
        for client in clients:
            client.close()


async def test_a_client_that_never_answers_is_closed_1011_after_the_ping_timeout(pinging_server):
    client = await RawClient.connect(pinging_server)
    try:
        opcode, _ = await client.frame()
        assert opcode == Opcode.PING.value
        opcode, payload = await client.frame()
        assert opcode == Opcode.CLOSE.value
        assert int.from_bytes(payload[:2], "big") == 1011 and b"keepalive ping timeout" in payload
    finally:
        client.close()


# -- permessage-deflate ---------------------------------------------------------------------------


async def test_deflate_is_negotiated_without_server_context_takeover_and_both_paths_decode(deflate_server):
    async with websockets.connect(deflate_server.ws_url + "/") as ws:
        negotiated = ws.response.headers["Sec-WebSocket-Extensions"]
        assert negotiated.startswith("permessage-deflate") and "server_no_context_takeover" in negotiated
        await alternate(ws, 50)
        await ws.send("sizes 0,125,126,65535,65536")
        for size in [0, 0, 125, 125, 126, 126, 65535, 65535, 65536, 65536]:
            assert await recv(ws) == bytes(i % 251 for i in range(size))


async def test_the_written_frame_is_the_prepared_deflated_one(deflate_server):
    client = await RawClient.connect(deflate_server, "permessage-deflate")
    try:
        client.send("twice " + "compress me " * 20)
        deflated = prepare({"type": "websocket.send", "text": "compress me " * 20}).deflated()
        assert await client.read(len(deflated)) == deflated
    finally:
        client.close()


async def test_a_client_asking_for_a_smaller_window_gets_uncompressed_written_frames(deflate_server):
    """server_max_window_bits=10 < the prepared frames' 12: written uncompressed, still in order."""
    factory = ClientPerMessageDeflateFactory(server_max_window_bits=10)
    async with websockets.connect(deflate_server.ws_url + "/", extensions=[factory], compression=None) as ws:
        assert "server_max_window_bits=10" in ws.response.headers["Sec-WebSocket-Extensions"]
        await alternate(ws, 20)


async def test_a_client_without_deflate_on_a_deflate_server_gets_plain_frames(deflate_server):
    async with websockets.connect(deflate_server.ws_url + "/", compression=None) as ws:
        assert "Sec-WebSocket-Extensions" not in ws.response.headers
        await alternate(ws, 20)


# -- the uvicorn releases supported ---------------------------------------------------------------


def lowest_uvicorn() -> Path:
    """The lowest supported uvicorn, installed once into a directory of the temporary one."""
    (major, minor), _ = SUPPORTED_UVICORN
    version = f"{major}.{minor}.0"
    target = Path(tempfile.gettempdir()) / f"hubbub-tests-uvicorn-{version}"
    if (target / "uvicorn").is_dir():
        return target
    staging = Path(tempfile.mkdtemp(prefix=f"{target.name}-"))
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(staging)]
    try:
        done = subprocess.run([*pip, f"uvicorn=={version}"], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.skip(f"pip could not fetch uvicorn {version} within 60 s (offline?)")
    if done.returncode != 0:
        pytest.skip(f"pip could not install uvicorn {version} (offline?): {done.stderr.strip()[-300:]}")
    with contextlib.suppress(OSError):  # another test worker got there first
        staging.rename(target)
    return target


async def test_the_lowest_supported_uvicorn_serves_prepared_frames_and_deflate():
    path = lowest_uvicorn()
    env = {"PYTHONPATH": os.pathsep.join([str(path), str(ROOT)])}
    for extra in (DOCUMENTED, PROTOCOL):
        process = uvicorn(APP, cwd=ROOT, extra=extra)
        process.env["PYTHONPATH"] = env["PYTHONPATH"]  # the installed copy before the venv's
        with process:
            async with websockets.connect(process.ws_url + "/") as ws:
                await ws.send("extension")
                assert await recv(ws) == "yes"
                await alternate(ws, 20)
        version = subprocess.run(
            [sys.executable, "-c", "import uvicorn; print(uvicorn.__version__)"],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
        ).stdout.strip()
        assert version == f"{SUPPORTED_UVICORN[0][0]}.{SUPPORTED_UVICORN[0][1]}.0"

"""Handshake abuse against uvicorn alone and behind docs/deployment.md's hardened nginx block (run as written).

Half-sent requests (a request line and part of the headers, then nothing), an oversized
request line on a WebSocket handshake, and more connections from one address than
``limit_conn`` allows; meanwhile an honest WebSocket client must be served normally.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import socket
import time
from pathlib import Path

import psutil
import pytest
import websockets

from tests.nginx import nginx, require_nginx
from tests.servers import ROOT, Process, uvicorn

pytestmark = pytest.mark.timeout(180)

HALF_OPEN = 500  # connections per measurement: bounded, on 127.0.0.1
UVICORN_OBSERVED = 20.0  # seconds uvicorn is watched holding them
HEADER_TIMEOUT = 10.0  # the block's client_header_timeout
MARGIN = 10.0  # a loaded machine is slow
DEPLOYMENT = ROOT / "docs" / "deployment.md"
#: The hardening flags docs/deployment.md's uvicorn command sets.
UVICORN_FLAGS = [
    "--ws",
    "hubbub.uvicorn_ws:WebSocketProtocol",
    "--timeout-graceful-shutdown",
    "10",
    "--limit-concurrency",
    "10000",
    "--timeout-keep-alive",
    "5",
]


def hardened_block() -> str:
    """The ```nginx block of the "Hardening against slow and abusive clients" section, as written."""
    section = DEPLOYMENT.read_text().split("## Hardening against slow and abusive clients", 1)[1].split("\n## ", 1)[0]
    found = re.search(r"```nginx\n(.*?)```", section, re.S)
    assert found, "docs/deployment.md's hardening section has no nginx block"
    return found.group(1)


def runnable(block: str, static: Path) -> str:
    """The block with this test's placeholders for the listening address, the upstream and the static root."""
    replaced = block
    for old, new in (
        ("listen 80;", "listen {listen};"),
        ("server 127.0.0.1:8000;", "server {upstream};"),
        ("/srv/myproject/static/", f"{static}/"),
    ):
        assert old in replaced, f"the documented block no longer has {old!r}"
        replaced = replaced.replace(old, new)
    return replaced


def hardened_uvicorn() -> Process:
    text = DEPLOYMENT.read_text()
    assert " ".join(UVICORN_FLAGS[2:]) in text, "the documented uvicorn command's flags changed"
    return uvicorn("tests.e2e.core_app:application", cwd=ROOT, extra=UVICORN_FLAGS + ["--log-level", "info"])


def hardened_nginx(app: Process, static: Path) -> Process:
    """nginx running the documented block in front of ``app``."""
    return nginx(runnable(hardened_block(), static), upstream=f"127.0.0.1:{app.port}")


def half_open(port: int, count: int) -> list[socket.socket]:
    """``count`` connections that send half a WebSocket handshake and then nothing."""
    socks = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(b"GET /ws/echo/ HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n")
        sock.setblocking(False)
        socks.append(sock)
    return socks


def still_open(socks: list[socket.socket]) -> int:
    """How many of ``socks`` the server has not closed (nothing to read and no EOF or reset)."""
    count = 0
    for sock in socks:
        try:
            if sock.recv(4096):
                continue  # an answer: it will be closed
        except BlockingIOError:
            count += 1
        except OSError:
            pass
    return count


async def echo(ws_url: str) -> str:
    async with websockets.connect(ws_url + "/ws/echo/", open_timeout=10) as ws:
        await ws.send("still served")
        return await asyncio.wait_for(ws.recv(), 10)


def oversized_handshake(port: int) -> bytes:
    """A WebSocket handshake with a 9 KiB request line; what came back within 5 s (b"" if nothing)."""
    key = base64.b64encode(os.urandom(16)).decode()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(
            f"GET /ws/echo/?{'a' * 9 * 1024} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        sock.settimeout(5)
        try:
            return sock.recv(4096)
        except TimeoutError:
            return b""


async def test_uvicorn_alone_holds_half_sent_requests_and_ignores_an_oversized_handshake():
    """What the docs say uvicorn cannot bound: half-sent requests stay open, a 9 KiB request line gets no answer."""
    with hardened_uvicorn() as server:
        socks = half_open(server.port, HALF_OPEN)
        try:
            started = time.monotonic()
            while time.monotonic() - started < UVICORN_OBSERVED:
                assert await echo(server.ws_url) == "still served"
                await asyncio.sleep(2)
            held = still_open(socks)
            print(f"uvicorn alone: {held}/{HALF_OPEN} half-sent requests still open after {UVICORN_OBSERVED:g} s")
            assert held == HALF_OPEN
            assert await asyncio.to_thread(oversized_handshake, server.port) == b""
            assert "414" in server.output()
        finally:
            for sock in socks:
                sock.close()


async def test_hardened_nginx_block_closes_half_sent_requests_after_its_header_timeout(tmp_path):
    """The documented block: half-sent requests closed after client_header_timeout, none reach uvicorn,
    an honest client is served meanwhile."""
    require_nginx()
    with hardened_uvicorn() as app, hardened_nginx(app, tmp_path) as proxy:
        assert await echo(proxy.ws_url) == "still served"
        opened = time.monotonic()
        socks = half_open(proxy.port, HALF_OPEN)
        try:
            upstream = len(psutil.Process(app.pid).net_connections(kind="tcp"))
            while (left := still_open(socks)) and time.monotonic() - opened < HEADER_TIMEOUT + MARGIN:
                assert await echo(proxy.ws_url) == "still served"
                await asyncio.sleep(0.5)
            closed_after = time.monotonic() - opened
        finally:
            for sock in socks:
                sock.close()
        print(f"nginx: {HALF_OPEN - left}/{HALF_OPEN} half-sent requests closed {closed_after:.1f} s after they opened")
        assert left == 0
        assert HEADER_TIMEOUT - 1 <= closed_after <= HEADER_TIMEOUT + MARGIN
        assert upstream < 10, "the half-sent requests never reached uvicorn"
        assert "client timed out" in proxy.error_log()


async def test_hardened_nginx_block_answers_an_oversized_request_line_with_414(tmp_path):
    require_nginx()
    with hardened_uvicorn() as app, hardened_nginx(app, tmp_path) as proxy:
        answer = await asyncio.to_thread(oversized_handshake, proxy.port)
        assert answer.startswith(b"HTTP/1.1 414"), answer
        deadline = time.monotonic() + 10  # nginx writes the line when it has finished with the connection
        while '" 414 ' not in proxy.access_log():
            assert time.monotonic() < deadline, "operators find it in nginx's access log:\n" + proxy.error_log()
            await asyncio.sleep(0.1)
        assert await echo(proxy.ws_url) == "still served"


async def test_hardened_nginx_block_limits_websockets_per_client_address(tmp_path):
    """limit_conn 100: the 101st WebSocket from one address gets 429; the first 100 keep working."""
    require_nginx()
    with hardened_uvicorn() as app, hardened_nginx(app, tmp_path) as proxy:
        sockets = [await websockets.connect(proxy.ws_url + "/ws/echo/", open_timeout=10) for _ in range(100)]
        try:
            with pytest.raises(websockets.InvalidStatus) as refused:
                await websockets.connect(proxy.ws_url + "/ws/echo/", open_timeout=10)
            assert refused.value.response.status_code == 429
            await sockets[0].send("first")
            assert await asyncio.wait_for(sockets[0].recv(), 10) == "first"
        finally:
            for ws in sockets:
                await ws.close()

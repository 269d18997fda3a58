"""A client that stops reading for good, on a real uvicorn: cut off within the stall timeout, logged, counted."""

from __future__ import annotations

import asyncio
import re
import socket
import time

import httpx
import psutil
import pytest
import websockets

from tests.e2e.test_backpressure import stalled_client
from tests.servers import ROOT, uvicorn

pytestmark = pytest.mark.timeout(120)

STALL_TIMEOUT = 3.0  # HUBBUB_STALLED_CLIENT_TIMEOUT in the server under test
MARGIN = 10.0  # a loaded machine is slow; the kernel's probe timer adds up to a second or so


def server_holds(pid: int, client_port: int) -> bool:
    """Whether server process ``pid`` still has a TCP connection from local port ``client_port``."""
    return any(
        conn.raddr and conn.raddr.port == client_port for conn in psutil.Process(pid).net_connections(kind="tcp")
    )


def drain(sock: socket.socket) -> str | None:
    """Read what the kernel buffered for ``sock``; how the connection ended: "reset", "eof" or None (still open)."""
    sock.settimeout(5)
    try:
        while sock.recv(1 << 16):
            pass
    except ConnectionResetError:
        return "reset"
    except TimeoutError:
        return None
    return "eof"


async def metric(url: str, name: str) -> float:
    async with httpx.AsyncClient() as http:
        text = (await http.get(url + "/metrics/")).text
    found = re.search(rf"^{name} (\S+)$", text, re.M)
    assert found, text
    return float(found.group(1))


@pytest.mark.parametrize("path", ["/ws/flood/close/", "/ws/flood/drop/"])
async def test_a_client_that_never_reads_again_is_cut_off_within_the_stall_timeout(path):
    """Whatever the outbox policy: the server drops the socket (the client sees a reset) within the
    stall timeout of the client's window closing, logs it once and counts it; other clients get everything."""
    env = {"DJANGO_SETTINGS_MODULE": "tests.e2e.lifecycle_settings", "HUBBUB_TEST_STALL_TIMEOUT": str(STALL_TIMEOUT)}
    with uvicorn("tests.e2e.backpressure_app:application", cwd=ROOT, env=env) as server:
        port = int(server.url.rsplit(":", 1)[1])
        stalled = stalled_client(port, path)
        stalled_port = stalled.getsockname()[1]
        fast = [await websockets.connect(server.ws_url + path, compression=None, max_queue=None) for _ in range(2)]
        try:
            # 20 MB in large frames: the kernel buffers (about 3 MB) fill within the first few hundred,
            # so the outbox is waiting on the socket well before the kernel cuts the client off.
            count, size = 1_000, 20_000

            async def collect(ws) -> int:
                for n in range(count):
                    assert (await ws.recv()).startswith(f"{n} ")
                return count

            started = time.monotonic()
            async with httpx.AsyncClient(timeout=60) as http:
                publishing = asyncio.ensure_future(
                    http.get(f"{server.url}/publish/", params={"n": count, "size": size, "rate": 2_000})
                )
                received = await asyncio.wait_for(asyncio.gather(*(collect(ws) for ws in fast)), 60)
                (await publishing).raise_for_status()
            assert received == [count, count], "the other clients got every message"
            deadline = started + STALL_TIMEOUT + MARGIN
            while server_holds(server.pid, stalled_port):
                assert time.monotonic() < deadline, (
                    f"the server still holds the stalled client after {time.monotonic() - started:.1f} s\n"
                    + server.output()
                )
                await asyncio.sleep(0.1)
            cut_off_after = time.monotonic() - started
            ended = await asyncio.to_thread(drain, stalled)
            print(f"{path}: stalled client cut off {cut_off_after:.1f} s after the flood began; it saw {ended}")
            assert ended == "reset"
            for ws in fast:  # still served
                assert await ws.ping() is not None
            assert await metric(server.url, "hubbub_stalled_clients_total") == 1, server.output()
            lines = [line for line in server.output().splitlines() if "Stalled WebSocket client" in line]
            assert len(lines) == 1, server.output()
            assert f"on {path}" in lines[0] and "Traceback" not in server.output()
        finally:
            stalled.close()
            for ws in fast:
                await ws.close()

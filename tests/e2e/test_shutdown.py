"""SIGTERM with 50 open sockets and one stalled client: the server exits within its documented bound.

runserver (its own bound, 1001 to every client) and uvicorn with docs/deployment.md's
``--timeout-graceful-shutdown`` (uvicorn's hard-coded 1012). The stalled client's kernel
cut-off is set far beyond the bound, so only the shutdown bound can end the process in time.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from pathlib import Path

import httpx
import pytest
import websockets

from hubbub.management.commands.runserver import GOING_AWAY_GRACE, SHUTDOWN_TIMEOUT
from tests.django_app.site import migrated_database, runserver
from tests.e2e.test_backpressure import stalled_client
from tests.servers import ROOT, Process, free_port, uvicorn

pytestmark = pytest.mark.timeout(180)

CLIENTS = 50
MARGIN = 10.0  # a loaded machine is slow to tear down 50 connections and a Python process
#: What docs/deployment.md promises for runserver: the exit within this many seconds of SIGTERM.
RUNSERVER_BOUND = 8.0
#: The value the documented uvicorn command gives --timeout-graceful-shutdown.
UVICORN_GRACEFUL = 10
ENV = {
    "DJANGO_SETTINGS_MODULE": "tests.e2e.lifecycle_settings",
    "HUBBUB_TEST_ASGI": "tests.e2e.backpressure_app.application",
    "HUBBUB_TEST_STALL_TIMEOUT": "600",  # the kernel would not cut the stalled client off in time
}


def documented_uvicorn_flags() -> list[str]:
    """The shutdown flag of docs/deployment.md's uvicorn command, as written there."""
    text = (ROOT / "docs" / "deployment.md").read_text()
    assert f"--timeout-graceful-shutdown {UVICORN_GRACEFUL}" in text
    return ["--timeout-graceful-shutdown", str(UVICORN_GRACEFUL), "--ws", "hubbub.uvicorn_ws:WebSocketProtocol"]


async def stall_one_and_open_many(server: Process) -> tuple[object, list[websockets.ClientConnection]]:
    """A stalled client whose outbox is stuck (a flood it never reads), then ``CLIENTS`` well-behaved ones."""
    stalled = stalled_client(int(server.url.rsplit(":", 1)[1]), "/ws/flood/drop/")
    async with httpx.AsyncClient(timeout=60) as http:
        (await http.get(f"{server.url}/publish/", params={"n": 30_000, "size": 200, "rate": 50_000})).raise_for_status()
    clients = [await websockets.connect(server.ws_url + "/ws/flood/close/", compression=None) for _ in range(CLIENTS)]
    return stalled, clients


async def sigterm_and_time(server: Process, clients: list[websockets.ClientConnection]) -> tuple[float, list[int]]:
    """SIGTERM; (seconds until the process exited, the close code each well-behaved client got)."""
    started = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    await asyncio.wait_for(asyncio.gather(*(ws.wait_closed() for ws in clients)), 60)
    while server.proc.poll() is None:
        assert time.monotonic() - started < 60, server.output()
        await asyncio.sleep(0.05)
    return time.monotonic() - started, [ws.close_code for ws in clients]


async def test_runserver_exits_within_its_bound_and_tells_clients_1001(tmp_path: Path):
    """runserver --noreload: every well-behaved client gets 1001 and the process exits within
    RUNSERVER_BOUND of SIGTERM although one client never reads."""
    assert GOING_AWAY_GRACE + SHUTDOWN_TIMEOUT + 1 <= RUNSERVER_BOUND
    with runserver(migrated_database(tmp_path), env=ENV) as server:
        stalled, clients = await stall_one_and_open_many(server)
        try:
            elapsed, codes = await sigterm_and_time(server, clients)
        finally:
            stalled.close()
    print(f"runserver: exit {elapsed:.2f} s after SIGTERM; close codes {sorted(set(codes))}")
    assert codes == [1001] * CLIENTS
    assert elapsed < RUNSERVER_BOUND + MARGIN, server.output()
    assert "Traceback" not in server.output()


async def test_runserver_second_signal_ends_the_wait_for_connections(tmp_path: Path):
    """A second SIGTERM stops waiting for the stalled connection: the exit comes sooner than the bound."""
    with runserver(migrated_database(tmp_path), env=ENV) as server:
        stalled, clients = await stall_one_and_open_many(server)
        try:
            started = time.monotonic()
            server.proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(asyncio.gather(*(ws.wait_closed() for ws in clients)), 60)
            server.proc.send_signal(signal.SIGTERM)
            server.proc.wait(RUNSERVER_BOUND + MARGIN)
            elapsed = time.monotonic() - started
        finally:
            stalled.close()
    print(f"runserver: exit {elapsed:.2f} s after two SIGTERMs")
    assert elapsed < RUNSERVER_BOUND + MARGIN


async def test_documented_uvicorn_command_exits_within_its_graceful_timeout_clients_get_1012():
    """uvicorn with docs/deployment.md's --timeout-graceful-shutdown: exit within that bound; uvicorn
    closes WebSockets with 1012 ("service restart"), hard-coded."""
    server = uvicorn("tests.e2e.backpressure_app:application", cwd=ROOT, env=ENV, extra=documented_uvicorn_flags())
    with server:
        stalled, clients = await stall_one_and_open_many(server)
        try:
            elapsed, codes = await sigterm_and_time(server, clients)
        finally:
            stalled.close()
    print(f"uvicorn: exit {elapsed:.2f} s after SIGTERM; close codes {sorted(set(codes))}")
    assert codes == [1012] * CLIENTS
    assert elapsed < UVICORN_GRACEFUL + MARGIN, server.output()


async def test_documented_gunicorn_command_exits_within_its_graceful_timeout():
    """gunicorn with docs/deployment.md's --graceful-timeout 30 and uvicorn workers: gunicorn ends a worker
    still running 30 s after SIGTERM, so the process exits within that; clients get uvicorn's 1012."""
    pytest.importorskip("uvicorn_worker", reason="gunicorn and uvicorn-worker are in the test extra")
    assert "--graceful-timeout 30" in (ROOT / "docs" / "deployment.md").read_text()
    port = free_port()
    args = [
        sys.executable,
        "-m",
        "gunicorn",
        "tests.e2e.backpressure_app:application",
        "--worker-class",
        "tests.django_app.workers.HubbubWorker",
        "--workers",
        "1",
        "--bind",
        f"127.0.0.1:{port}",
        "--graceful-timeout",
        "30",
    ]
    server = Process(args, ROOT, {**ENV, "PYTHONPATH": str(ROOT)}, port)
    server.url, server.ws_url = f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}"  # type: ignore[attr-defined]
    with server:
        stalled, clients = await stall_one_and_open_many(server)
        try:
            elapsed, codes = await sigterm_and_time(server, clients)
        finally:
            stalled.close()
    print(f"gunicorn: exit {elapsed:.2f} s after SIGTERM; close codes {sorted(set(codes))}")
    assert codes == [1012] * CLIENTS
    assert elapsed < 30 + MARGIN, server.output()

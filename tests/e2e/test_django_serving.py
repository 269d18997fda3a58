"""Production servers serve the example site: uvicorn over TCP and a unix socket, gunicorn, daphne.

The commands are the ones docs/deployment.md gives.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import websockets

from tests.servers import EXAMPLES, ROOT, Process, free_port, uvicorn, wait_for_port


@pytest.fixture(scope="module")
def demo_env(tmp_path_factory):
    db = tmp_path_factory.mktemp("serving") / "demo.sqlite3"
    env = {
        "DJANGO_SETTINGS_MODULE": "demo.settings",
        "DEMO_DB": str(db),
        "DJANGO_DEBUG": "0",
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(EXAMPLES)]),
    }
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=EXAMPLES,
        env={**os.environ, **env},
        check=True,
        timeout=60,
    )
    return env


async def echo(connect, url: str, origin: str) -> str:
    async with connect(url, origin=origin) as ws:
        await ws.send("served")
        return await asyncio.wait_for(ws.recv(), 5)


def check_site(base: str, ws_base: str) -> None:
    assert httpx.get(base + "/").status_code == 200
    assert asyncio.run(echo(websockets.connect, ws_base + "/ws/echo/", base)) == "served"


def test_uvicorn_over_tcp(demo_env):
    extra = [
        "--ws",
        "hubbub.uvicorn_ws:WebSocketProtocol",
        "--ws-max-size",
        "1048576",
        "--ws-ping-interval",
        "20",
        "--ws-ping-timeout",
        "30",
        "--ws-per-message-deflate",
        "false",
    ]
    with uvicorn(env=demo_env, extra=extra) as server:
        check_site(server.url, server.ws_url)


def test_uvicorn_over_a_unix_socket(demo_env, tmp_path):
    path = tmp_path / "hubbub.sock"
    args = [sys.executable, "-m", "uvicorn", "demo.asgi:application", "--uds", str(path), "--log-level", "warning"]
    with Process(args, EXAMPLES, demo_env):
        wait_for_unix_socket(path)
        with httpx.Client(transport=httpx.HTTPTransport(uds=str(path)), base_url="http://localhost") as client:
            assert client.get("/").status_code == 200

        async def over_the_socket():
            async with websockets.unix_connect(str(path), "ws://localhost/ws/echo/", origin="http://localhost") as ws:
                await ws.send("through nginx, say")
                return await asyncio.wait_for(ws.recv(), 5)

        assert asyncio.run(over_the_socket()) == "through nginx, say"


def wait_for_unix_socket(path: Path, timeout: float = 20.0) -> None:
    import socket
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.socket(socket.AF_UNIX) as sock:
                sock.connect(str(path))
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {path}")


def test_daphne(demo_env):
    pytest.importorskip("daphne", reason="daphne is in the test extra: pip install -e '.[test]'")
    port = free_port()
    args = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "demo.asgi:application"]
    with Process(args, EXAMPLES, demo_env, port) as server:
        wait_for_port(port)
        check_site(f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}")
    assert "Traceback" not in server.output(), server.output()


def test_gunicorn_with_uvicorn_workers(demo_env):
    pytest.importorskip("uvicorn_worker", reason="gunicorn and uvicorn-worker are in the test extra")
    port = free_port()
    args = [
        sys.executable,
        "-m",
        "gunicorn",
        "demo.asgi:application",
        "--worker-class",
        "tests.django_app.workers.HubbubWorker",
        "--workers",
        "2",
        "--bind",
        f"127.0.0.1:{port}",
        "--graceful-timeout",
        "5",
    ]
    with Process(args, EXAMPLES, demo_env, port) as server:
        check_site(f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}")
    assert "Traceback" not in server.output(), server.output()

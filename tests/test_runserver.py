"""``manage.py runserver`` as a real subprocess: HTTP and WebSocket on one port, static files, reloads, errors."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import websockets
from django.test import override_settings

from hubbub.checks import check_app_order
from tests.django_app.site import env_for, migrated_database, runserver
from tests.servers import EXAMPLES, ROOT, Process, free_port


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> Path:
    return migrated_database(tmp_path_factory.mktemp("runserver"))


def stop_group(process: Process) -> None:
    """Stop a runserver and, with the autoreloader, the child it started (same session)."""
    if process.proc is not None and process.proc.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


async def echo(ws_url: str, origin: str, payload: str | bytes) -> str | bytes:
    async with websockets.connect(ws_url, origin=origin, max_size=None) as ws:
        await ws.send(payload)
        return await asyncio.wait_for(ws.recv(), 5)


def test_http_and_websocket_on_one_port(db):
    with runserver(db) as server:
        output = server.output()
        assert f"hubbub: serving tests.django_app.asgi.application (HTTP + WebSocket) at {server.url}/" in output
        assert "Performing system checks" in output
        assert httpx.get(server.url + "/").text == "home: anonymous"
        assert asyncio.run(echo(server.ws_url + "/ws/echo/", server.url, "over the same port")) == "over the same port"


def test_websocket_messages_are_limited_to_one_mebibyte(db):
    async def exchange(ws_url, origin):
        async with websockets.connect(ws_url + "/ws/echo/", origin=origin, max_size=None) as ws:
            await ws.send(b"x" * (1024 * 1024))
            assert len(await asyncio.wait_for(ws.recv(), 5)) == 1024 * 1024
            await ws.send(b"x" * (1024 * 1024 + 1))
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 5)
            return closed.value.rcvd.code

    with runserver(db) as server:
        assert asyncio.run(exchange(server.ws_url, server.url)) == 1009  # "message too big"


def test_make_demo_command_serves_the_example_site_with_the_autoreloader(tmp_path):
    """What `make demo` runs: examples/manage.py migrate, then runserver 127.0.0.1:PORT."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "demo.settings",
        "DEMO_DB": str(tmp_path / "demo.sqlite3"),
        "PYTHONPATH": str(ROOT),
    }
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=EXAMPLES, env=env, check=True, timeout=60
    )
    port = free_port()
    server = Process([sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}"], EXAMPLES, env, port)
    try:
        server.start()
        assert httpx.get(f"http://127.0.0.1:{port}/").status_code == 200, server.output()
        origin = f"http://127.0.0.1:{port}"
        assert asyncio.run(echo(f"ws://127.0.0.1:{port}/ws/echo/", origin, "demo")) == "demo"
        assert "hubbub: serving demo.asgi.application (HTTP + WebSocket)" in server.output()
    finally:
        stop_group(server)


def test_autoreloader_restarts_on_a_code_change(db):
    server = runserver(db, "--skip-checks")  # with the autoreloader
    watched = ROOT / "tests" / "django_app" / "views.py"
    try:
        server.start()
        assert httpx.get(server.url + "/").status_code == 200
        time.sleep(1.1)  # Django's StatReloader compares modification times once a second
        os.utime(watched)
        deadline = time.monotonic() + 30  # generous: a loaded machine is slow to restart Django
        while server.output().count("hubbub: serving") < 2:
            assert time.monotonic() < deadline, server.output()
            time.sleep(0.1)
        deadline = time.monotonic() + 30
        while True:  # the new process binds the port again
            try:
                assert httpx.get(server.url + "/").text == "home: anonymous"
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
    finally:
        stop_group(server)


@pytest.mark.parametrize(
    "debug, args, status",
    [("1", (), 200), ("0", (), 404), ("0", ("--insecure",), 200), ("1", ("--nostatic",), 404)],
)
def test_static_files_as_djangos_runserver_serves_them(db, debug, args, status):
    with runserver(db, "--noreload", *args, env={"HUBBUB_TEST_DEBUG": debug}) as server:
        response = httpx.get(server.url + "/static/django_app/site.css")
        assert response.status_code == status
        if status == 200:
            assert "#123456" in response.text


def test_noasgi_falls_back_to_djangos_wsgi_server(db):
    with runserver(db, "--noreload", "--noasgi") as server:
        assert httpx.get(server.url + "/").text == "home: anonymous"
        assert "hubbub: serving" not in server.output()
        with pytest.raises((websockets.InvalidStatus, websockets.InvalidHandshake)):
            asyncio.run(echo(server.ws_url + "/ws/echo/", server.url, "nobody home"))


@pytest.mark.parametrize(
    "value, message",
    [
        ("", "ASGI_APPLICATION is not set"),
        ("tests.nowhere.application", "ASGI_APPLICATION = 'tests.nowhere.application': cannot import module"),
        ("tests.django_app.asgi.nothing", "ASGI_APPLICATION = 'tests.django_app.asgi.nothing': module"),
    ],
)
def test_missing_or_wrong_asgi_application_is_named(db, value, message):
    result = subprocess.run(
        [sys.executable, "-m", "django", "runserver", f"127.0.0.1:{free_port()}", "--noreload"],
        cwd=ROOT,
        env={**os.environ, **env_for(db, HUBBUB_TEST_ASGI=value)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert message in result.stderr + result.stdout


def test_port_in_use_is_reported(db):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "django", "runserver", f"127.0.0.1:{port}", "--noreload", "--skip-checks"],
            cwd=ROOT,
            env={**os.environ, **env_for(db)},
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert "Error: That port is already in use." in result.stderr


def test_system_check_warns_when_hubbub_comes_after_staticfiles():
    apps = ["django.contrib.auth", "django.contrib.contenttypes", "django.contrib.staticfiles", "hubbub"]
    with override_settings(INSTALLED_APPS=apps):
        (warning,) = check_app_order()
    assert warning.id == "hubbub.W002" and "'django.contrib.staticfiles'" in warning.msg
    with override_settings(INSTALLED_APPS=["hubbub", *apps[:-1]]):
        assert check_app_order() == []


def test_a_bad_stall_timeout_stops_runserver_naming_the_setting(db):
    env = env_for(db, DJANGO_SETTINGS_MODULE="tests.e2e.lifecycle_settings", HUBBUB_TEST_STALL_TIMEOUT="-1")
    result = subprocess.run(
        [sys.executable, "-m", "django", "runserver", f"127.0.0.1:{free_port()}", "--noreload", "--skip-checks"],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "HUBBUB_STALLED_CLIENT_TIMEOUT must be a positive number of seconds or None, got -1.0" in result.stderr
    assert "Traceback" not in result.stderr


def test_runserver_caps_the_connections_it_holds(db):
    """LIMIT_CONCURRENCY half-sent requests fill runserver: the next request gets 503, not a hang."""
    from hubbub.management.commands.runserver import LIMIT_CONCURRENCY

    with runserver(db) as server:
        held = []
        try:
            for _ in range(LIMIT_CONCURRENCY):
                sock = socket.create_connection(("127.0.0.1", server.port))
                sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and never the rest
                held.append(sock)
            response = httpx.get(server.url + "/", timeout=30)
            assert response.status_code == 503
        finally:
            for sock in held:
                sock.close()
        deadline = time.monotonic() + 30  # the server notices the closed sockets on its own time
        while (response := httpx.get(server.url + "/", timeout=30)).status_code == 503:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert response.text == "home: anonymous"

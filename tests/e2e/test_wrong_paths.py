"""Wrong paths and names from the client's side: a real uvicorn, real WebSocket and HTTP clients.

A WebSocket to a path no route matches, or one whose consumer joins a group the layer
refuses, is refused at the handshake (HTTP 403) and logged as ONE WARNING line naming
the path or the name: no 500, no traceback. An HTTP request no route matches gets 404.
Each test stops its server before reading the log, so anything logged late is seen too.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets
from websockets.exceptions import InvalidStatus

from tests.servers import ROOT, Process, uvicorn

pytestmark = pytest.mark.timeout(90)

TIMEOUT = 10.0  # generous: the machine is shared

#: Every record as "LEVEL logger: message", one per line, so levels can be asserted.
LOG_CONFIG = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(levelname)s %(name)s: %(message)s"}},
    "handlers": {"out": {"class": "logging.StreamHandler", "formatter": "plain", "stream": "ext://sys.stderr"}},
    "root": {"level": "WARNING", "handlers": ["out"]},
}


@pytest.fixture
def log_config(tmp_path: Path) -> str:
    config = tmp_path / "logging.json"
    config.write_text(json.dumps(LOG_CONFIG))
    return str(config)


@pytest.fixture
def example_site(tmp_path: Path, log_config: str) -> Iterator[Process]:
    """The example site (examples/demo) in uvicorn."""
    env = {"DJANGO_SETTINGS_MODULE": "demo.settings", "DEMO_DB": str(tmp_path / "demo.sqlite3"), "DJANGO_DEBUG": "0"}
    with uvicorn(env=env, extra=["--log-config", log_config]) as server:
        yield server


@pytest.fixture
def tutorial_app(log_config: str) -> Iterator[Process]:
    """The tutorial's chat consumers (tests/e2e/wrong_paths_app.py) in uvicorn."""
    env = {"DJANGO_SETTINGS_MODULE": "tests.settings"}
    with uvicorn(
        "tests.e2e.wrong_paths_app:application", cwd=ROOT, env=env, extra=["--log-config", log_config]
    ) as server:
        yield server


async def handshake_status(url: str) -> int:
    """The HTTP status a WebSocket handshake to ``url`` gets (101 if it is accepted)."""
    try:
        async with websockets.connect(url, open_timeout=TIMEOUT):
            return 101
    except InvalidStatus as exc:
        return exc.response.status_code


def problems_logged(server: Process) -> list[str]:
    """Stop ``server`` and return its WARNING and ERROR lines; fail on any traceback."""
    server.stop()
    output = server.output()
    assert "Traceback" not in output, output
    return [line for line in output.splitlines() if line.startswith(("WARNING", "ERROR", "CRITICAL"))]


async def test_websocket_to_a_path_with_no_route_is_refused_with_403(example_site):
    """/ws/does-not-exist/ and /ws/chat/lobby (no trailing slash): 403 and one WARNING naming each path."""
    for missing in ("/ws/does-not-exist/", "/ws/chat/lobby"):
        assert await handshake_status(example_site.ws_url + missing) == 403
    async with websockets.connect(example_site.ws_url + "/ws/echo/", open_timeout=TIMEOUT) as ws:  # still serving
        await ws.send("still here")
        assert await ws.recv() == "still here"
    assert problems_logged(example_site) == [
        "WARNING hubbub.routing: WebSocket '/ws/does-not-exist/' refused (403): no route matches this path.",
        "WARNING hubbub.routing: WebSocket '/ws/chat/lobby' refused (403): no route matches this path.",
    ]


async def test_group_name_the_layer_refuses_is_refused_with_403(tutorial_app):
    """A room called "Café Paris" in the tutorial's consumers (async and sync): 403, one WARNING naming the group."""
    room = urllib.parse.quote("Café Paris")
    for prefix in ("/ws/chat/", "/ws/sync-chat/"):
        assert await handshake_status(f"{tutorial_app.ws_url}{prefix}{room}/") == 403
    async with websockets.connect(tutorial_app.ws_url + "/ws/chat/paris/", open_timeout=TIMEOUT) as ws:
        await ws.send("bonjour")
        assert json.loads(await ws.recv()) == {"message": "bonjour"}
    rule = "is not valid (ASCII letters, digits, '-', '_' and '.' only, under 100 characters)."
    assert problems_logged(tutorial_app) == [
        f"WARNING hubbub.consumer: WebSocket '/ws/chat/Café Paris/' refused (403): group name 'chat_Café Paris' {rule}",
        "WARNING hubbub.consumer: WebSocket '/ws/sync-chat/Café Paris/' refused (403): "
        f"group name 'chat_Café Paris' {rule}",
    ]


async def test_http_path_with_no_route_gets_404(tutorial_app):
    """An HTTP request that the http URLRouter cannot route: 404 and one WARNING naming the path."""
    async with httpx.AsyncClient(base_url=tutorial_app.url, timeout=TIMEOUT) as client:
        missing = await client.get("/nowhere/")
        found = await client.get("/hello/")
    assert (missing.status_code, missing.text) == (404, "Not Found")
    assert (found.status_code, found.text) == (200, "hello")
    assert problems_logged(tutorial_app) == [
        "WARNING hubbub.routing: HTTP GET '/nowhere/': 404, no route matches this path."
    ]

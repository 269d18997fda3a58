"""Tokens never reach the log: uvicorn with the documented --log-config, Django's LOGGING, runserver.

Each server is a real process serving the test site (tests/django_app); the clients put a
token in the URL (and in hubbub's subprotocol), and the test reads what the server wrote.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import httpx
import pytest
import websockets
from django.core import signing

from hubbub.auth import token_subprotocols
from tests.django_app.asgi import TOKEN_SALT
from tests.django_app.site import env_for, migrated_database, runserver
from tests.docblocks import block
from tests.servers import ROOT, Process, free_port

HEADING = "Tokens in access logs"


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> Path:
    return migrated_database(tmp_path_factory.mktemp("logs"))


def alice_token() -> str:
    return signing.dumps(1, salt=TOKEN_SALT)  # alice is the first user of the fresh database


async def whoami(url: str, **kwargs) -> dict:
    async with websockets.connect(url, **kwargs) as ws:
        return json.loads(await asyncio.wait_for(ws.recv(), 5))


def use_tokens(server_url: str, ws_url: str) -> list:
    """Send a token the three ways a client can leak it; returns the secrets sent."""
    in_query, in_subprotocol, over_http = alice_token(), alice_token() + "x", "http-secret-" + os.urandom(6).hex()
    assert asyncio.run(whoami(f"{ws_url}/ws/token/whoami/?token={in_query}")) == {"user": "alice"}
    assert asyncio.run(
        whoami(
            f"{ws_url}/ws/token/whoami/",
            subprotocols=token_subprotocols(in_subprotocol),
        )
    ) == {"user": None}  # a wrong token: refused, logged at INFO without the token
    assert httpx.get(f"{server_url}/?token={over_http}&page=2").status_code == 200
    return [in_query, in_subprotocol, over_http]


def assert_redacted(output: str, secrets: list) -> None:
    for secret in secrets:
        assert secret not in output, output
    assert "/ws/token/whoami/?token=[redacted]" in output, output
    assert "/?token=[redacted]&page=2" in output, output


def uvicorn_process(db: Path, *extra: str, settings: str = "tests.django_app.settings", path: str = "") -> Process:
    port = free_port()
    args = [
        sys.executable,
        "-m",
        "uvicorn",
        "tests.django_app.asgi:application",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *extra,
    ]
    env = env_for(db, DJANGO_SETTINGS_MODULE=settings)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), path]))
    process = Process(args, ROOT, env, port)
    process.url, process.ws_url = f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}"  # type: ignore[attr-defined]
    return process


def test_uvicorn_with_the_documented_log_config_writes_no_token(db, tmp_path):
    """uvicorn --log-config with deployment.md's JSON: access lines show token=[redacted], never the token."""
    config = tmp_path / "log-config.json"
    config.write_text(block("deployment.md", HEADING, "json"))
    with uvicorn_process(db, "--log-config", str(config)) as server:
        secrets = use_tokens(server.url, server.ws_url)
    assert_redacted(server.output(), secrets)
    assert '"WebSocket /ws/token/whoami/?token=[redacted]" [accepted]' in server.output()


def test_uvicorn_without_the_filter_does_write_tokens(db):
    """The control: uvicorn's default logging writes the token (what the filter is for)."""
    with uvicorn_process(db) as server:
        secrets = use_tokens(server.url, server.ws_url)
    assert secrets[0] in server.output()


def test_djangos_logging_with_the_documented_snippet_writes_no_token(db, tmp_path):
    """Plain uvicorn, settings with deployment.md's LOGGING: uvicorn's lines go through the filter."""
    (tmp_path / "logging_settings.py").write_text(
        "from tests.django_app.settings import *  # noqa\n\n" + block("deployment.md", HEADING, "python", "LOGGING")
    )
    with uvicorn_process(db, settings="logging_settings", path=str(tmp_path)) as server:
        secrets = use_tokens(server.url, server.ws_url)
    assert_redacted(server.output(), secrets)


def test_runserver_writes_no_token(db):
    """manage.py runserver redacts its access lines without any configuration."""
    with runserver(db) as server:
        secrets = use_tokens(server.url, server.ws_url)
    assert_redacted(server.output(), secrets)


def test_gunicorn_with_hubbubs_worker_writes_no_token(db):
    """gunicorn's logs, which uvicorn's lines go to under hubbub.gunicorn_worker.HubbubWorker, are redacted too."""
    pytest.importorskip("uvicorn_worker", reason="gunicorn and uvicorn-worker are in the test extra")
    port = free_port()
    args = [
        sys.executable,
        "-m",
        "gunicorn",
        "tests.django_app.asgi:application",
        "--worker-class",
        "hubbub.gunicorn_worker.HubbubWorker",
        "--workers",
        "1",
        "--bind",
        f"127.0.0.1:{port}",
        "--access-logfile",
        "-",
        "--error-logfile",
        "-",
        "--log-level",
        "info",
    ]
    with Process(args, ROOT, env_for(db), port) as server:
        secrets = use_tokens(f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}")
    assert_redacted(server.output(), secrets)

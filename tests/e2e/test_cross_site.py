"""Cross-site WebSocket hijacking: the example site's cookie routes refuse other sites' pages.

A page on any site can open a WebSocket to the example site, and the browser sends the
visitor's session cookie with it. Every route whose consumer reads that cookie must refuse a
handshake whose Origin is another site's (HTTP 403), and accept the site's own pages.
One uvicorn process serves the example site, migrated into a fresh SQLite file.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from typing import Any

import httpx
import pytest
import websockets

from tests.e2e.test_example_site import PASSWORD
from tests.servers import EXAMPLES, ROOT, uvicorn

#: Every WebSocket route of the example site whose consumer reads the session cookie.
COOKIE_ROUTES = ["/ws/chat/lobby/", "/ws/table/t1/", "/ws/notifications/"]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    env = {
        "DJANGO_SETTINGS_MODULE": "demo.settings",
        "DJANGO_DEBUG": "0",
        "DEMO_DB": str(tmp_path_factory.mktemp("cross-site") / "demo.sqlite3"),
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(EXAMPLES)]),
    }
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=EXAMPLES,
        env={**os.environ, **env},
        check=True,
        timeout=60,
    )
    with uvicorn(env=env) as server:
        yield server
    assert "Traceback" not in server.output(), server.output()


@pytest.fixture(scope="module")
def alice_cookie(site) -> str:
    """alice's session cookie, from Django's login view."""
    with httpx.Client(base_url=site.url) as client:
        client.get("/accounts/login/")
        answer = client.post(
            "/accounts/login/",
            data={
                "username": "alice",
                "password": PASSWORD,
                "csrfmiddlewaretoken": client.cookies["csrftoken"],
            },
            headers={"Referer": site.url + "/accounts/login/"},
        )
        assert answer.status_code == 302, answer.text[:300]
        return "; ".join(f"{name}={value}" for name, value in client.cookies.items())


async def first_message(url: str, origin: str | None, cookie: str) -> dict[str, Any]:
    async with websockets.connect(url, origin=origin, additional_headers={"Cookie": cookie}, open_timeout=10) as ws:
        return json.loads(await asyncio.wait_for(ws.recv(), 10))


def refusal_status(url: str, origin: str | None, cookie: str) -> int:
    with pytest.raises(websockets.InvalidStatus) as refused:
        asyncio.run(first_message(url, origin, cookie))
    return refused.value.response.status_code


@pytest.mark.parametrize("route", COOKIE_ROUTES)
@pytest.mark.parametrize("origin", ["https://evil.example", "http://127.0.0.1.evil.example", "null", None])
def test_a_foreign_page_cannot_open_a_cookie_route_with_the_users_cookie(site, alice_cookie, route, origin):
    """Handshake refused with 403 before the consumer runs, and one warning naming the origin."""
    assert refusal_status(site.ws_url + route, origin, alice_cookie) == 403
    named = repr(origin) if origin else "header missing"
    assert f"WebSocket to {route} refused: Origin {named} is not allowed" in site.output()


@pytest.mark.parametrize("route", COOKIE_ROUTES)
def test_the_sites_own_pages_open_every_cookie_route_as_the_user(site, alice_cookie, route):
    """Same origin: accepted, and the consumer sees alice (the chat room says so)."""
    message = asyncio.run(first_message(site.ws_url + route, site.url, alice_cookie))
    if route.startswith("/ws/chat/"):
        assert message == {"joined": "lobby", "you": "alice"}
    assert "error" not in message

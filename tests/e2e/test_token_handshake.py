"""A token in the WebSocket handshake's Sec-WebSocket-Protocol header, not in the URL, over a real server.

uvicorn serves the test site (tests/django_app); its /ws/token/whoami/ route is behind
AuthMiddlewareStack(TokenAuthMiddleware(...)) with signed tokens, as docs/auth.md shows.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import shutil
from pathlib import Path

import pytest
import websockets
from django.core import signing

from hubbub.auth import token_subprotocols
from tests.django_app.asgi import TOKEN_SALT
from tests.django_app.site import migrated_database, site_uvicorn
from tests.docblocks import block
from tests.e2e.test_django_auth import cookie_header, log_in


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    db: Path = migrated_database(tmp_path_factory.mktemp("token-handshake"))
    with site_uvicorn(db) as process:
        yield process
    assert "Traceback" not in process.output(), process.output()


async def handshake(url: str, subprotocols, cookie: str | None = None):
    headers = [("Cookie", cookie)] if cookie else []
    async with websockets.connect(url, subprotocols=subprotocols, additional_headers=headers) as ws:
        reply = json.loads(await asyncio.wait_for(ws.recv(), 5))
        return reply, ws.subprotocol, ws.response.headers.get("Sec-WebSocket-Protocol")


def test_token_offered_as_a_subprotocol_logs_the_user_in_and_is_not_echoed(server):
    """The server answers with 'hubbub.token' (what a browser needs), never with the token itself."""
    token = signing.dumps(1, salt=TOKEN_SALT)  # alice; a signed token has ':' in it, hence base64url
    reply, chosen, header = asyncio.run(handshake(server.ws_url + "/ws/token/whoami/", token_subprotocols(token)))
    assert reply == {"user": "alice"}
    assert chosen == header == "hubbub.token"


@pytest.mark.parametrize(
    "subprotocols",
    [
        token_subprotocols(signing.dumps(1, salt=TOKEN_SALT, key="another-secret")),
        ["hubbub.token", "hubbub.token.!!not-base64!!"],
    ],
)
def test_a_bad_subprotocol_token_gives_anonymous_even_with_a_session(server, subprotocols):
    """An invalid token never falls back to the session's user; the handshake still completes."""
    cookie = cookie_header(log_in(server))
    reply, chosen, _ = asyncio.run(handshake(server.ws_url + "/ws/token/whoami/", subprotocols, cookie))
    assert reply == {"user": None}
    assert chosen == "hubbub.token"
    assert subprotocols[1] not in server.output()


def test_without_a_token_the_session_user_stays(server):
    cookie = cookie_header(log_in(server))
    reply, chosen, _ = asyncio.run(handshake(server.ws_url + "/ws/token/whoami/", None, cookie))
    assert reply == {"user": "alice"}
    assert chosen is None


def test_a_browser_sends_the_token_the_documented_way(server):
    """Chromium runs auth.md's snippet: the socket opens with 'hubbub.token' and the server knows alice."""
    from tests.e2e.test_example_site import CHROMEDRIVER, CHROMIUM, new_browser

    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not shutil.which(path)]
    if importlib.util.find_spec("selenium") is None:
        missing.append("the selenium package")
    if missing:
        reason = f"BROWSER TEST SKIPPED: {', '.join(missing)} not installed"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    snippet = block("auth.md", "Sending the token from a browser", "js")
    snippet = snippet.replace('await (await fetch("/ws-token/")).text()', "arguments[0]")
    snippet = snippet.replace('"wss://example.com/api/ws/"', "arguments[1]")
    script = f"""
        const done = arguments[arguments.length - 1];
        {snippet}
        socket.onmessage = (event) => done(event.data + " " + socket.protocol);
        socket.onclose = (event) => done("closed " + event.code);
    """
    browser = new_browser()
    try:
        browser.set_script_timeout(15)
        browser.get(server.url + "/")
        token = signing.dumps(1, salt=TOKEN_SALT)
        result = browser.execute_async_script(script, token, server.ws_url + "/ws/token/whoami/")
    finally:
        browser.quit()
    assert result == '{"user": "alice"} hubbub.token'

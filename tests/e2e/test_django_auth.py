"""Logging in through Django's login view, then using the session (and tokens) over real WebSockets.

One uvicorn process serves the test site (tests/django_app) against a migrated SQLite
file; httpx and the websockets package are the clients, as a browser and a script would be.
"""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest
import websockets
from django.core import signing

from tests.django_app.asgi import TOKEN_SALT
from tests.django_app.site import PASSWORD, migrated_database, site_uvicorn


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    db = migrated_database(tmp_path_factory.mktemp("auth"))
    with site_uvicorn(db) as process:
        yield process
    output = process.output()
    assert "Traceback" not in output, output  # nothing the tests sent crashed anything


def log_in(server, username: str = "alice", password: str = PASSWORD) -> httpx.Client:
    """An HTTP client that went through Django's LoginView (CSRF token and all)."""
    client = httpx.Client(base_url=server.url)
    page = client.get("/login/")
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    response = client.post("/login/", data={"username": username, "password": password, "csrfmiddlewaretoken": csrf})
    assert response.status_code == 302, response.text
    return client


def cookie_header(client: httpx.Client) -> str:
    return "; ".join(f"{name}={value}" for name, value in client.cookies.items())


async def ask(url: str, *, origin: str | None = None, cookie: str | None = None, headers=(), send=None):
    """Connect, optionally send one JSON message, return the first JSON reply."""
    extra = list(headers)
    if cookie is not None:
        extra.append(("Cookie", cookie))
    async with websockets.connect(url, origin=origin, additional_headers=extra) as ws:
        if send is not None:
            await ws.send(send)
        return await asyncio.wait_for(ws.recv(), 5)


def status_of_refusal(coroutine) -> int:
    with pytest.raises(websockets.InvalidStatus) as refused:
        asyncio.run(coroutine)
    return refused.value.response.status_code


def test_login_through_djangos_view_then_the_socket_knows_the_user(server):
    client = log_in(server)
    assert client.get("/").text == "home: alice"
    reply = asyncio.run(ask(server.ws_url + "/ws/whoami/", origin=server.url, cookie=cookie_header(client)))
    assert reply == '{"user": "alice"}'
    assert asyncio.run(ask(server.ws_url + "/ws/members/", origin=server.url, cookie=cookie_header(client))) == (
        '{"welcome": "alice"}'
    )


def test_anonymous_socket_is_refused_by_the_members_only_consumer(server):
    assert asyncio.run(ask(server.ws_url + "/ws/whoami/", origin=server.url)) == '{"user": null}'
    assert status_of_refusal(ask(server.ws_url + "/ws/members/", origin=server.url)) == 403


def test_login_and_logout_over_the_socket_are_honoured_by_django(server):
    import json

    http = httpx.Client(base_url=server.url)
    reply = json.loads(
        asyncio.run(
            ask(server.ws_url + "/ws/account/", origin=server.url, send=json.dumps({"login": ["alice", PASSWORD]}))
        )
    )
    assert reply["user"] == "alice"
    http.cookies.set("sessionid", reply["session"])
    assert http.get("/").text == "home: alice"  # Django verified the session's hash

    reply = json.loads(
        asyncio.run(
            ask(
                server.ws_url + "/ws/account/",
                origin=server.url,
                cookie=f"sessionid={reply['session']}",
                send=json.dumps({"logout": True}),
            )
        )
    )
    assert reply["user"] is None
    assert http.get("/").text == "home: anonymous"


@pytest.mark.parametrize(
    "origin, allowed",
    [
        ("http://127.0.0.1:{port}", True),
        ("http://localhost:{port}", True),
        ("https://evil.example", False),
        ("http://127.0.0.1.evil.example", False),
        ("null", False),
        (None, False),  # no Origin header: a script, not a browser page
    ],
)
def test_origin_is_checked_against_allowed_hosts(server, origin, allowed):
    if origin is not None:
        origin = origin.format(port=server.port)
    attempt = ask(server.ws_url + "/ws/whoami/", origin=origin)
    if allowed:
        assert asyncio.run(attempt) == '{"user": null}'
    else:
        assert status_of_refusal(attempt) == 403
    if not allowed:
        assert f"Origin {origin!r} is not allowed" in server.output() or "header missing" in server.output()


@pytest.mark.parametrize(
    "cookie",
    [
        "sessionid=",
        "sessionid=0123456789abcdefghijklmnopqrstuv",  # well-formed, but no such session
        ";;;=;sessionid",
        'sessionid="unterminated; csrftoken',
        "x" * 6000,
    ],
)
def test_malformed_or_unknown_session_cookies_mean_anonymous(server, cookie):
    assert asyncio.run(ask(server.ws_url + "/ws/whoami/", origin=server.url, cookie=cookie)) == '{"user": null}'


def test_tampered_session_cookie_means_anonymous(server):
    client = log_in(server)
    key = client.cookies["sessionid"]
    tampered = key[:-1] + ("a" if key[-1] != "a" else "b")
    reply = asyncio.run(ask(server.ws_url + "/ws/whoami/", origin=server.url, cookie=f"sessionid={tampered}"))
    assert reply == '{"user": null}'
    assert (
        asyncio.run(ask(server.ws_url + "/ws/whoami/", origin=server.url, cookie=f"sessionid={key}"))
        == '{"user": "alice"}'
    )


def good_token() -> str:
    return signing.dumps(1, salt=TOKEN_SALT)  # alice is the first user of the fresh database


@pytest.mark.parametrize(
    "where",
    ["authorization-token", "authorization-bearer", "token-header", "query"],
)
def test_token_auth_for_clients_without_cookies(server, where):
    token = good_token()
    url, headers = server.ws_url + "/ws/token/whoami/", []
    if where == "authorization-token":
        headers = [("Authorization", f"Token {token}")]
    elif where == "authorization-bearer":
        headers = [("Authorization", f"Bearer {token}")]
    elif where == "token-header":
        headers = [("token", token)]
    else:
        url += f"?token={token}"
    assert asyncio.run(ask(url, headers=headers)) == '{"user": "alice"}'


@pytest.mark.parametrize(
    "token",
    [
        "not-a-token",
        "MQ:1tampered:signature",
        signing.dumps(1, salt="another-purpose", key="hubbub-tests"),  # right key, wrong salt
        signing.dumps(1, salt=TOKEN_SALT, key="some-other-secret"),
    ],
    # Fixed ids: signed tokens hold the time they were made, and parallel workers must collect the same names.
    ids=["garbage", "tampered", "wrong-salt", "wrong-key"],
)
def test_invalid_tokens_give_anonymous(server, token):
    reply = asyncio.run(ask(server.ws_url + "/ws/token/whoami/", headers=[("Authorization", f"Token {token}")]))
    assert reply == '{"user": null}'
    assert token not in server.output()

"""Cookies and sessions in the scope, driven in-process against the real session backend."""

from __future__ import annotations

import pytest
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session

from hubbub.db import database_sync_to_async
from hubbub.generic.http import AsyncHttpConsumer
from hubbub.sessions import CookieMiddleware, SessionMiddleware, SessionMiddlewareStack
from hubbub.testing import HttpCommunicator, WebsocketCommunicator
from tests.django_app.consumers import SessionCounter

pytestmark = pytest.mark.django_db(transaction=True)


async def scope_seen_by(app_factory, headers):
    """The scope the innermost application receives for a WebSocket with ``headers``."""
    seen = {}

    async def inner(scope, receive, send):
        seen.update(scope)
        await send({"type": "websocket.close"})

    communicator = WebsocketCommunicator(app_factory(inner), "/ws/", headers=headers)
    await communicator.connect()
    await communicator.wait()
    return seen


@pytest.mark.parametrize(
    "headers, expected",
    [
        ([(b"cookie", b"a=1; b=two")], {"a": "1", "b": "two"}),
        ([(b"cookie", b"a=1"), (b"cookie", b"b=2")], {"a": "1", "b": "2"}),  # split Cookie headers
        ([], {}),
        ([(b"cookie", b';;=; ;garbage;x=\xff\xfe; y="quoted"')], {"x": "\xff\xfe", "y": "quoted"}),
    ],
)
async def test_cookie_middleware_parses_cookies_and_survives_malformed_ones(headers, expected):
    scope = await scope_seen_by(CookieMiddleware, headers)
    assert {k: v for k, v in scope["cookies"].items() if k} == expected


def test_set_cookie_and_delete_cookie_write_set_cookie_headers():
    message = {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}
    CookieMiddleware.set_cookie(message, "flavour", "oat", max_age=60, secure=True, httponly=True, samesite="Strict")
    CookieMiddleware.delete_cookie(message, "old", path="/app/")
    headers = [value.decode() for name, value in message["headers"] if name == b"Set-Cookie"]
    assert headers[0].startswith("flavour=oat; ")
    for part in ("expires=", "Max-Age=60", "Path=/", "Secure", "HttpOnly", "SameSite=Strict"):
        assert part in headers[0]
    assert headers[1].startswith('old=""; ') and "Max-Age=0" in headers[1] and "Path=/app/" in headers[1]
    assert "1970" in headers[1]
    with pytest.raises(ValueError):
        CookieMiddleware.set_cookie(message, "bad", samesite="sometimes")


async def test_session_middleware_needs_cookie_middleware():
    communicator = WebsocketCommunicator(SessionMiddleware(SessionCounter.as_asgi()), "/ws/")
    with pytest.raises(ValueError, match="CookieMiddleware"):
        await communicator.connect()


async def test_session_from_cookie_is_loaded_before_the_consumer_runs():
    store = SessionStore()
    store["colour"] = "teal"
    await store.asave()
    scope = await scope_seen_by(SessionMiddlewareStack, [(b"cookie", f"sessionid={store.session_key}".encode())])
    # Readable from async code with no ORM call: the data was loaded by the middleware.
    assert scope["session"]["colour"] == "teal"
    assert scope["session"].session_key == store.session_key


@pytest.mark.parametrize(
    "cookie", [b"sessionid=not-a-real-session-key-at-all", b"sessionid=" + b"z" * 5000, b"sessionid="]
)
async def test_unknown_or_tampered_session_key_gives_a_fresh_empty_session(cookie):
    scope = await scope_seen_by(SessionMiddlewareStack, [(b"cookie", cookie)])
    assert scope["session"].is_empty()
    assert scope["session"].session_key is None


async def test_session_changed_in_a_consumer_is_saved_with_save():
    app = SessionMiddlewareStack(SessionCounter.as_asgi())
    communicator = WebsocketCommunicator(app, "/ws/counter/")
    assert (await communicator.connect())[0]
    await communicator.send_json_to({})
    first = await communicator.receive_json_from()
    await communicator.disconnect()
    assert first["count"] == 1 and first["key"]

    # A new connection with that session's cookie carries on counting.
    communicator = WebsocketCommunicator(
        app, "/ws/counter/", headers=[(b"cookie", f"sessionid={first['key']}".encode())]
    )
    await communicator.connect()
    await communicator.send_json_to({})
    second = await communicator.receive_json_from()
    await communicator.disconnect()
    assert second == {"count": 2, "key": first["key"]}
    stored = await database_sync_to_async(Session.objects.get)(session_key=first["key"])
    assert stored.get_decoded()["count"] == 2


class Basket(AsyncHttpConsumer):
    async def handle(self, body):
        self.scope["session"]["items"] = self.scope["session"].get("items", 0) + 1
        await self.send_response(200, str(self.scope["session"]["items"]).encode())


async def test_http_consumer_session_is_saved_and_its_cookie_set_when_the_response_starts():
    app = SessionMiddlewareStack(Basket.as_asgi())
    response = await HttpCommunicator(app, "GET", "/basket/").get_response()
    cookies = [value.decode() for name, value in response["headers"] if name == b"Set-Cookie"]
    assert response["body"] == b"1" and len(cookies) == 1
    key = cookies[0].split(";")[0].split("=", 1)[1]
    assert "HttpOnly" in cookies[0] and "SameSite=Lax" in cookies[0]
    response = await HttpCommunicator(
        app, "GET", "/basket/", headers=[(b"cookie", f"sessionid={key}".encode())]
    ).get_response()
    assert response["body"] == b"2"


class Forgetful(AsyncHttpConsumer):
    async def handle(self, body):
        await database_sync_to_async(self.scope["session"].flush)()
        await self.send_response(200, b"bye")


async def test_emptied_session_deletes_the_cookie():
    store = SessionStore()
    store["x"] = 1
    await store.asave()
    app = SessionMiddlewareStack(Forgetful.as_asgi())
    response = await HttpCommunicator(
        app, "GET", "/", headers=[(b"cookie", f"sessionid={store.session_key}".encode())]
    ).get_response()
    cookies = [value.decode() for name, value in response["headers"] if name == b"Set-Cookie"]
    assert cookies and cookies[0].startswith('sessionid=""') and "Max-Age=0" in cookies[0]
    assert not await Session.objects.filter(session_key=store.session_key).aexists()


class LoggedOutMeanwhile(AsyncHttpConsumer):
    """Changes the session while another request (a logout in another tab) deletes its row."""

    async def handle(self, body):
        self.scope["session"]["items"] = 1
        await Session.objects.filter(session_key=self.scope["session"].session_key).adelete()
        await self.send_response(200, b"saved?")


async def test_session_deleted_during_the_request_raises_suspicious_operation_and_sends_no_response():
    """Parity 5: Channels' SuspiciousOperation from the response start's send(); the start is not forwarded."""
    from django.core.exceptions import SuspiciousOperation

    store = SessionStore()
    store["items"] = 0
    await store.asave()
    app = SessionMiddlewareStack(LoggedOutMeanwhile.as_asgi())
    communicator = HttpCommunicator(app, "GET", "/", headers=[(b"cookie", f"sessionid={store.session_key}".encode())])
    with pytest.raises(SuspiciousOperation, match=r"^The request's session was deleted before the request completed\."):
        await communicator.get_response(timeout=5)
    assert communicator.output_queue.empty()  # no http.response.start reached the server


async def test_invalid_samesite_setting_raises_assertion_error_that_is_also_a_value_error(settings):
    """Parity 6: a SameSite value other than lax/strict/none fails when the cookie is set.

    The error is an AssertionError (as Django's) and a ValueError.
    """
    settings.SESSION_COOKIE_SAMESITE = "Sometimes"
    app = SessionMiddlewareStack(Basket.as_asgi())
    with pytest.raises(AssertionError, match="samesite") as raised:
        await HttpCommunicator(app, "GET", "/basket/").get_response(timeout=5)
    assert isinstance(raised.value, ValueError)
    for value in ("STRICT", "None", "lax"):
        message = {"type": "http.response.start", "status": 200}
        CookieMiddleware.set_cookie(message, "k", "v", samesite=value)
        assert f"SameSite={value}".encode() in message["headers"][0][1]

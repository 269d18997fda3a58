"""scope['user'] from Django sessions and tokens; login/logout over a socket, checked by Django's own views."""

from __future__ import annotations

import json
import logging

import pytest
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.sessions.backends.db import SessionStore
from django.test import AsyncClient

from hubbub.auth import (
    AuthMiddleware,
    AuthMiddlewareStack,
    TokenAuthMiddleware,
    UserLazyObject,
    get_user,
    login,
    logout,
    token_from_scope,
    token_subprotocols,
)
from hubbub.db import database_sync_to_async
from hubbub.generic.websocket import AsyncWebsocketConsumer
from hubbub.testing import WebsocketCommunicator
from tests.django_app.consumers import Account, MembersOnly, WhoAmI

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "correct horse battery staple"


@pytest.fixture
def site(settings):
    """The test app's views (behind Django's session and auth middleware, see tests/settings.py)."""
    settings.ROOT_URLCONF = "tests.django_app.urls"
    return settings


@pytest.fixture
async def alice():
    return await database_sync_to_async(get_user_model().objects.create_user)("alice", password=PASSWORD)


async def django_session_cookie(client: AsyncClient) -> bytes:
    return f"sessionid={client.cookies['sessionid'].value}".encode()


async def whoami(cookie: bytes = b"", path: str = "/ws/whoami/", app=None, headers=()):
    communicator = WebsocketCommunicator(
        app or AuthMiddlewareStack(WhoAmI.as_asgi()),
        path,
        headers=[(b"cookie", cookie), *headers] if cookie else list(headers),
    )
    accepted, _ = await communicator.connect(timeout=5)
    assert accepted
    answer = await communicator.receive_json_from(timeout=5)
    await communicator.disconnect()
    return answer["user"]


async def test_anonymous_connection_gets_anonymous_user():
    assert await whoami() is None
    assert await whoami(b"sessionid=garbage-that-is-no-session") is None


async def test_session_from_djangos_login_gives_the_user(site, alice):
    client = AsyncClient()
    assert await client.alogin(username="alice", password=PASSWORD)
    assert await whoami(await django_session_cookie(client)) == "alice"


async def test_consumer_requiring_login_refuses_anonymous_and_admits_members(site, alice):
    communicator = WebsocketCommunicator(AuthMiddlewareStack(MembersOnly.as_asgi()), "/ws/members/")
    assert (await communicator.connect())[0] is False
    client = AsyncClient()
    await client.alogin(username="alice", password=PASSWORD)
    communicator = WebsocketCommunicator(
        AuthMiddlewareStack(MembersOnly.as_asgi()),
        "/ws/members/",
        headers=[(b"cookie", await django_session_cookie(client))],
    )
    assert (await communicator.connect())[0] is True
    assert await communicator.receive_json_from() == {"welcome": "alice"}
    await communicator.disconnect()


async def account(cookie: bytes, command: dict) -> dict:
    communicator = WebsocketCommunicator(
        AuthMiddlewareStack(Account.as_asgi()), "/ws/account/", headers=[(b"cookie", cookie)]
    )
    await communicator.connect()
    await communicator.send_json_to(command)
    answer = await communicator.receive_json_from(timeout=5)
    await communicator.disconnect()
    return answer


async def test_login_over_a_socket_rotates_the_key_and_satisfies_djangos_session_checks(site, alice):
    anonymous = SessionStore()
    anonymous["cart"] = ["tea"]
    await anonymous.asave()
    answer = await account(f"sessionid={anonymous.session_key}".encode(), {"login": ["alice", PASSWORD]})
    assert answer["user"] == "alice"
    assert answer["session"] != anonymous.session_key  # rotated: no session fixation
    assert not await SessionStore().aexists(anonymous.session_key)

    stored = await SessionStore(answer["session"]).aload()
    assert stored["cart"] == ["tea"]  # data carried over, as Django's login does
    assert stored[SESSION_KEY] == str(alice.pk)
    assert stored[BACKEND_SESSION_KEY] == "django.contrib.auth.backends.ModelBackend"
    assert stored[HASH_SESSION_KEY] == alice.get_session_auth_hash()

    # Django's own request cycle accepts the session the socket logged in.
    client = AsyncClient()
    client.cookies["sessionid"] = answer["session"]
    assert (await client.get("/")).content == b"home: alice"


async def test_bad_credentials_log_nobody_in(site, alice):
    assert await account(b"", {"login": ["alice", "wrong"]}) == {"error": "bad credentials"}


async def test_logout_over_a_socket_flushes_the_session_for_django_too(site, alice):
    client = AsyncClient()
    await client.alogin(username="alice", password=PASSWORD)
    cookie = await django_session_cookie(client)
    answer = await account(cookie, {"logout": True})
    assert answer["user"] is None
    assert (await client.get("/")).content == b"home: anonymous"
    assert await whoami(cookie) is None


async def test_password_change_ends_existing_sessions(site, alice):
    client = AsyncClient()
    await client.alogin(username="alice", password=PASSWORD)
    cookie = await django_session_cookie(client)
    alice.set_password("a new one")
    await alice.asave()
    assert await whoami(cookie) is None


@pytest.mark.parametrize(
    "data",
    [
        {SESSION_KEY: "not-a-number", BACKEND_SESSION_KEY: "django.contrib.auth.backends.ModelBackend"},
        {SESSION_KEY: "1"},  # no backend recorded
        {SESSION_KEY: "1", BACKEND_SESSION_KEY: "some.removed.Backend"},
        {SESSION_KEY: "999999", BACKEND_SESSION_KEY: "django.contrib.auth.backends.ModelBackend"},
    ],
)
async def test_tampered_or_stale_session_data_gives_anonymous(alice, data):
    store = SessionStore()
    store.update(data)
    await store.asave()
    assert await whoami(f"sessionid={store.session_key}".encode()) is None


async def test_auth_middleware_needs_a_session():
    communicator = WebsocketCommunicator(AuthMiddleware(WhoAmI.as_asgi()), "/ws/")
    with pytest.raises(ValueError, match="SessionMiddleware"):
        await communicator.connect()


def test_unresolved_user_says_what_is_missing():
    with pytest.raises(ValueError, match="AuthMiddleware"):
        _ = UserLazyObject().is_authenticated


@pytest.mark.parametrize(
    "headers, query, token",
    [
        ([(b"authorization", b"Token abc123")], b"", "abc123"),
        ([(b"authorization", b"Bearer  xyz ")], b"", "xyz"),
        ([(b"authorization", b"Basic dXNlcjpwdw==")], b"", None),
        ([(b"authorization", b"Token")], b"", None),
        ([(b"token", b"t0k")], b"", "t0k"),
        ([], b"room=1&token=q%2Btok", "q+tok"),
        ([], b"token=", None),
        ([(b"authorization", b"Token first")], b"token=second", "first"),
        ([], b"", None),
    ],
)
def test_token_is_found_in_header_or_query(headers, query, token):
    assert token_from_scope({"headers": headers, "query_string": query}) == token


@pytest.mark.parametrize(
    "subprotocols, query, token",
    [
        (token_subprotocols("MQ:1tX:sig"), b"", "MQ:1tX:sig"),  # a Django signed token, colons and all
        (token_subprotocols("é-ü"), b"", "é-ü"),
        (["graphql-ws", *token_subprotocols("abc")], b"token=from-url", "abc"),  # the subprotocol wins over the URL
        (["hubbub.token", "hubbub.token.not base64!"], b"", ""),  # sent, but unreadable
        (["hubbub.token", "hubbub.token.__8"], b"", ""),  # base64url of bytes that are not UTF-8
        (["hubbub.token"], b"token=q", "q"),
        (["graphql-ws"], b"", None),
    ],
)
def test_token_is_found_in_the_subprotocols(subprotocols, query, token):
    assert token_from_scope({"headers": [], "subprotocols": subprotocols, "query_string": query}) == token


class Subprotocols(AsyncWebsocketConsumer):
    """Accepts with the subprotocol the test asks for, and reports the user and the offered subprotocols."""

    choice = None

    async def connect(self):
        await self.accept(self.choice)
        user = self.scope["user"]
        await self.send(
            text_data=json.dumps(
                {
                    "user": user.get_username() if user.is_authenticated else None,
                    "offered": self.scope["subprotocols"],
                }
            )
        )


async def handshake(app, subprotocols):
    communicator = WebsocketCommunicator(app, "/ws/", subprotocols=subprotocols)
    connected, chosen = await communicator.connect()
    assert connected
    reply = json.loads(await communicator.receive_from())
    await communicator.disconnect()
    return chosen, reply


async def test_token_subprotocol_is_accepted_for_the_application_and_hidden_from_it(alice, caplog):
    def lookup(token):
        return get_user_model().objects.filter(username=token).first()

    app = TokenAuthMiddleware(Subprotocols.as_asgi(), lookup)
    chosen, reply = await handshake(app, token_subprotocols("alice"))
    assert chosen == "hubbub.token"  # a browser that offered subprotocols needs one chosen
    assert reply == {"user": "alice", "offered": []}

    app = TokenAuthMiddleware(Subprotocols.as_asgi(choice="graphql-ws"), lookup)
    chosen, reply = await handshake(app, ["graphql-ws", *token_subprotocols("alice")])
    assert chosen == "graphql-ws"  # the application's own choice stands
    assert reply == {"user": "alice", "offered": ["graphql-ws"]}

    with caplog.at_level(logging.INFO, logger="hubbub.auth"):
        chosen, reply = await handshake(app, ["graphql-ws", "hubbub.token", "hubbub.token.%%forged%%"])
    assert reply == {"user": None, "offered": ["graphql-ws"]}
    assert "forged" not in caplog.text and caplog.text.count("token refused") == 1
    assert "does not hold base64url text" in caplog.text


async def test_token_middleware_resolves_through_sync_and_async_callables(alice, caplog):
    async def async_lookup(token):
        return alice if token == "good" else None

    def sync_lookup(token):  # runs in the ORM's thread, so it may query
        return get_user_model().objects.filter(username=token).first()

    for lookup, good in ((async_lookup, "good"), (sync_lookup, "alice")):
        app = TokenAuthMiddleware(WhoAmI.as_asgi(), lookup)
        assert await whoami(app=app, headers=[(b"authorization", f"Token {good}".encode())]) == "alice"
        assert await whoami(app=app, path=f"/ws/?token={good}") == "alice"
        with caplog.at_level(logging.INFO, logger="hubbub.auth"):
            assert await whoami(app=app, headers=[(b"token", b"forged-secret")]) is None
        assert await whoami(app=app) is None
    assert "forged-secret" not in caplog.text and "token refused" in caplog.text


async def test_token_overrides_the_session_user_and_its_absence_keeps_it(site, alice):
    await database_sync_to_async(get_user_model().objects.create_user)("bob", password=PASSWORD)
    client = AsyncClient()
    await client.alogin(username="alice", password=PASSWORD)
    cookie = await django_session_cookie(client)

    def lookup(token):
        return get_user_model().objects.filter(username=token).first()

    app = AuthMiddlewareStack(TokenAuthMiddleware(WhoAmI.as_asgi(), lookup))
    assert await whoami(cookie, app=app) == "alice"
    assert await whoami(cookie, app=app, path="/ws/?token=bob") == "bob"
    assert await whoami(cookie, app=app, path="/ws/?token=nobody") is None


async def test_login_needs_a_backend_when_several_are_configured(settings, alice):
    settings.AUTHENTICATION_BACKENDS = [
        "django.contrib.auth.backends.ModelBackend",
        "django.contrib.auth.backends.AllowAllUsersModelBackend",
    ]
    store = SessionStore()
    scope = {"session": store}
    with pytest.raises(ValueError, match="backend="):
        await login(scope, alice)
    await login(scope, alice, backend="django.contrib.auth.backends.AllowAllUsersModelBackend")
    assert store[BACKEND_SESSION_KEY] == "django.contrib.auth.backends.AllowAllUsersModelBackend"


async def test_login_sets_scope_user_even_when_the_scope_had_none(alice):
    """Parity 1: after login() the scope carries the user, though nothing had put a 'user' key there."""
    scope = {"session": SessionStore()}
    await login(scope, alice)
    assert scope["user"] == alice
    assert scope["session"][SESSION_KEY] == str(alice.pk)


async def test_login_without_a_user_uses_the_scopes_user_or_refuses_before_touching_the_session(alice):
    """Parity 2: login(scope, None) logs in scope['user'].

    With no user anywhere: Channels' ValueError, and the session is untouched.
    """
    scope = {"session": SessionStore(), "user": alice}
    await login(scope, None)
    assert scope["session"][SESSION_KEY] == str(alice.pk)

    for scope in ({"session": SessionStore()}, {"session": SessionStore(), "user": None}):
        with pytest.raises(ValueError, match=r"^User must be passed as an argument or must be present in the scope\.$"):
            await login(scope, None)
        assert scope["session"].session_key is None and not scope["session"].modified


async def test_logout_signals_only_for_an_authenticated_user_and_always_flushes(alice):
    """Parity 3: user_logged_out is sent for a logged-in user only; the session is flushed either way."""
    from django.contrib.auth.models import AnonymousUser
    from django.contrib.auth.signals import user_logged_out

    received = []

    def on_logout(sender, user, **kwargs):
        received.append(user)

    user_logged_out.connect(on_logout)
    try:
        for scope in ({"session": SessionStore()}, {"session": SessionStore(), "user": AnonymousUser()}):
            scope["session"]["cart"] = "3 apples"
            await logout(scope)
            assert "cart" not in scope["session"]
        assert received == []
        no_user = {"session": SessionStore()}
        await logout(no_user)
        assert "user" not in no_user

        scope = {"session": SessionStore(), "user": alice}
        await login(scope, alice)
        await logout(scope)
        assert received == [alice]
        assert isinstance(scope["user"], AnonymousUser)
        assert SESSION_KEY not in scope["session"]
    finally:
        user_logged_out.disconnect(on_logout)


async def test_login_and_get_user_without_a_session_say_to_wrap_in_session_middleware(alice):
    """Parity 18: Channels' wording when the scope has no session."""
    expected = r"^Cannot find session in scope\. You should wrap your consumer in SessionMiddleware"
    with pytest.raises(ValueError, match=expected):
        await login({"user": alice}, alice)
    with pytest.raises(ValueError, match=expected):
        await get_user({})

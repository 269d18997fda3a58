"""The logged-in user in the connection scope, from the Django session (or a token).

``AuthMiddlewareStack(inner)`` gives ``inner`` ``scope['session']`` and ``scope['user']``,
the user of the session Django's login view started (``AnonymousUser`` otherwise).
``login()`` and ``logout()`` work on the scope as Django's own do on a request; save the
session afterwards (``scope['session'].save()``) for the change to outlive the connection.

``TokenAuthMiddleware`` is for clients that cannot send the session cookie (a mobile app,
a script): it resolves a token through a function you give it; see docs/auth.md.
"""

from __future__ import annotations

import base64
import binascii
import inspect
import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

from django.conf import settings
from django.contrib.auth import (
    BACKEND_SESSION_KEY,
    HASH_SESSION_KEY,
    SESSION_KEY,
    get_backends,
    get_user_model,
    load_backend,
    user_logged_in,
    user_logged_out,
)
from django.core.exceptions import ValidationError
from django.utils.crypto import constant_time_compare
from django.utils.functional import LazyObject, empty

from .db import database_sync_to_async
from .middleware import BaseMiddleware
from .sessions import CookieMiddleware, SessionMiddleware
from .typing import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "AuthMiddleware",
    "AuthMiddlewareStack",
    "BACKEND_SESSION_KEY",
    "BaseMiddleware",
    "CookieMiddleware",
    "HASH_SESSION_KEY",
    "SESSION_KEY",
    "SessionMiddleware",
    "TOKEN_SUBPROTOCOL",
    "TokenAuthMiddleware",
    "UserLazyObject",
    "database_sync_to_async",
    "get_user",
    "login",
    "logout",
    "token_from_scope",
    "token_subprotocols",
]

logger = logging.getLogger("hubbub.auth")


def _anonymous() -> Any:
    # Imported here so this module can be imported before Django is set up (asgi.py often does).
    from django.contrib.auth.models import AnonymousUser

    return AnonymousUser()


def _session_of(scope: Scope) -> Any:
    session = scope.get("session")
    if session is None:
        raise ValueError(
            "Cannot find session in scope. You should wrap your consumer in SessionMiddleware "
            "(AuthMiddlewareStack does)."
        )
    return session


def _session_user_id(session: Any) -> Any:
    """The user's primary key stored in the session, as the user model's Python type."""
    return get_user_model()._meta.pk.to_python(session[SESSION_KEY])


def _hash_verified(session: Any, user: Any) -> bool:
    """Whether the session's password hash matches ``user`` (Django's check, fallback keys included).

    A session verified only by a ``SECRET_KEY_FALLBACKS`` key is moved to the current
    key, as Django's ``get_user`` does.
    """
    session_hash = session.get(HASH_SESSION_KEY)
    if not session_hash:
        return False
    if constant_time_compare(session_hash, user.get_session_auth_hash()):
        return True
    fallbacks = getattr(user, "get_session_auth_fallback_hash", None)
    if fallbacks is not None and any(constant_time_compare(session_hash, h) for h in fallbacks()):
        session.cycle_key()
        session[HASH_SESSION_KEY] = user.get_session_auth_hash()
        return True
    return False


@database_sync_to_async
def get_user(scope: Scope) -> Any:
    """The user the scope's session is logged in as, or ``AnonymousUser``.

    A session whose backend is no longer configured, whose user is gone, or whose
    password hash no longer matches (the password changed) gives ``AnonymousUser``;
    the last is flushed, as Django does.
    """
    session = _session_of(scope)
    try:
        user_id = _session_user_id(session)
        backend_path = session[BACKEND_SESSION_KEY]
    except (KeyError, ValidationError, ValueError, TypeError):
        return _anonymous()
    if backend_path not in settings.AUTHENTICATION_BACKENDS:
        return _anonymous()
    user = load_backend(backend_path).get_user(user_id)
    if user is None:
        return _anonymous()
    if hasattr(user, "get_session_auth_hash") and not _hash_verified(session, user):
        session.flush()
        return _anonymous()
    return user


def _backend_path(user: Any, backend: str | type | None) -> str:
    if isinstance(backend, type):
        return f"{backend.__module__}.{backend.__qualname__}"
    if backend:
        return backend
    user_backend: str | None = getattr(user, "backend", None)
    if user_backend:
        return user_backend
    get_backends()  # ImproperlyConfigured when there are none, as in Django's login()
    backends: list[str] = list(settings.AUTHENTICATION_BACKENDS)
    if len(backends) == 1:
        return backends[0]
    raise ValueError(
        "Several AUTHENTICATION_BACKENDS are configured, so login() cannot tell which one vouched "
        "for this user: pass backend=..., or use the user authenticate() returned (it carries .backend)."
    )


@database_sync_to_async
def login(scope: Scope, user: Any, backend: str | type | None = None) -> None:
    """Log ``user`` in on the scope's session, as ``django.contrib.auth.login`` does for a request.

    ``user=None`` logs in ``scope['user']``; with neither, ``ValueError``. Afterwards
    ``scope['user']`` is ``user``, whether or not the scope had a ``'user'`` key.

    The session key is rotated (or the session flushed when it belonged to another user),
    and the password hash stored so the session stays valid for Django's own views.
    Call ``scope['session'].save()`` afterwards to keep it.
    """
    session = _session_of(scope)
    if user is None:
        user = scope.get("user")
    if user is None:
        raise ValueError("User must be passed as an argument or must be present in the scope.")
    auth_hash = user.get_session_auth_hash() if hasattr(user, "get_session_auth_hash") else ""
    if SESSION_KEY in session:
        try:
            same_user = _session_user_id(session) == user.pk
        except (ValidationError, ValueError, TypeError):
            same_user = False
        if not same_user or (auth_hash and not constant_time_compare(session.get(HASH_SESSION_KEY, ""), auth_hash)):
            # Someone else's session (or one from before a password change): start afresh.
            session.flush()
    else:
        session.cycle_key()
    session[SESSION_KEY] = user._meta.pk.value_to_string(user)
    session[BACKEND_SESSION_KEY] = _backend_path(user, backend)
    session[HASH_SESSION_KEY] = auth_hash
    scope["user"] = user
    user_logged_in.send(sender=user.__class__, request=None, user=user)


@database_sync_to_async
def logout(scope: Scope) -> None:
    """Log the scope's user out: flush the session and set ``scope['user']`` to ``AnonymousUser``.

    ``user_logged_out`` is sent only when an authenticated user was logged in (as
    Channels does); the session is flushed either way.
    """
    session = _session_of(scope)
    user = scope.get("user")
    if getattr(user, "is_authenticated", False):
        user_logged_out.send(sender=user.__class__, request=None, user=user)
    session.flush()
    if "user" in scope:
        scope["user"] = _anonymous()


# LazyObject is generic in django-stubs only; Django's class takes no subscript at run time.
class UserLazyObject(LazyObject):  # type: ignore[type-arg]
    """``scope['user']`` until it is resolved; then it behaves as the user it wraps."""

    def _setup(self) -> None:
        raise ValueError("Accessing scope['user'] before it is ready: is AuthMiddleware in place?")


class AuthMiddleware(BaseMiddleware):
    """Sets ``scope['user']`` from the session; needs ``SessionMiddleware`` outside it."""

    def populate_scope(self, scope: Scope) -> None:
        """Put an unresolved ``UserLazyObject`` in the scope (unless something set a user already)."""
        if "session" not in scope:
            raise ValueError("AuthMiddleware needs SessionMiddleware outside it; use AuthMiddlewareStack.")
        if "user" not in scope:
            scope["user"] = UserLazyObject()

    async def resolve_scope(self, scope: Scope) -> None:
        """Look the session's user up (one trip to the ORM's thread)."""
        user = scope["user"]
        if isinstance(user, UserLazyObject) and user._wrapped is empty:
            user._wrapped = await get_user(scope)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope = dict(scope)
        self.populate_scope(scope)
        await self.resolve_scope(scope)
        return await self.inner(scope, receive, send)


def AuthMiddlewareStack(inner: ASGIApp) -> ASGIApp:  # noqa: N802  (Channels' name)
    """Cookies, session and user: what a routing file wraps its WebSocket routes in."""
    return CookieMiddleware(SessionMiddleware(AuthMiddleware(inner)))


TokenResolver = Callable[[str], Any | Awaitable[Any]]

_TOKEN_SCHEMES = (b"token", b"bearer")

#: The subprotocol a client offers to say "my token is in the next one"; the server accepts with it.
TOKEN_SUBPROTOCOL = "hubbub.token"
#: The offered subprotocol carrying the token: this prefix, then the token in base64url without padding
#: (a subprotocol may only hold RFC 7230 token characters; a Django signed token has ``:`` in it).
TOKEN_SUBPROTOCOL_PREFIX = TOKEN_SUBPROTOCOL + "."

_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")


def token_subprotocols(token: str) -> list[str]:
    """The subprotocols a client offers to send ``token`` in the handshake, not in the URL.

    ``websockets.connect(url, subprotocols=token_subprotocols(token))``; in a browser,
    ``new WebSocket(url, ["hubbub.token", "hubbub.token." + base64url(token)])``.
    """
    encoded = base64.urlsafe_b64encode(token.encode("utf-8")).decode("ascii").rstrip("=")
    return [TOKEN_SUBPROTOCOL, TOKEN_SUBPROTOCOL_PREFIX + encoded]


def _decode_subprotocol_token(encoded: str) -> str:
    """The token carried by ``hubbub.token.<encoded>``; ``""`` when it is not base64url of UTF-8 text."""
    if not _BASE64URL.fullmatch(encoded):
        return ""
    try:
        return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return ""


def _is_token_subprotocol(subprotocol: str) -> bool:
    return subprotocol == TOKEN_SUBPROTOCOL or subprotocol.startswith(TOKEN_SUBPROTOCOL_PREFIX)


def token_from_scope(scope: Scope) -> str | None:
    """The token a client sent, or ``None``; ``""`` for one sent in a form that cannot be read.

    Looked for in order: ``Authorization: Token x`` / ``Bearer x``, a ``token`` header,
    the ``hubbub.token.<base64url>`` subprotocol, ``?token=x``.
    """
    token_header = None
    headers: Iterable[tuple[bytes, bytes]] = scope.get("headers", ())
    for name, value in headers:
        if name == b"authorization":
            scheme, _, credentials = value.strip().partition(b" ")
            if scheme.lower() in _TOKEN_SCHEMES and credentials.strip():
                return credentials.strip().decode("latin-1")
        elif name == b"token" and token_header is None and value.strip():
            token_header = value.strip().decode("latin-1")
    if token_header is not None:
        return token_header
    subprotocols: Iterable[str] = scope.get("subprotocols") or ()
    for subprotocol in subprotocols:
        if subprotocol.startswith(TOKEN_SUBPROTOCOL_PREFIX):
            return _decode_subprotocol_token(subprotocol[len(TOKEN_SUBPROTOCOL_PREFIX) :])
    query: bytes = scope.get("query_string", b"")
    if query:
        values = parse_qs(query.decode("latin-1")).get("token")
        if values and values[0]:
            return values[0]
    return None


def _accepting_with_token_subprotocol(send: Send) -> Send:
    """``send`` that answers a handshake with ``hubbub.token`` when the application picks no subprotocol.

    A browser that offered subprotocols fails the connection unless the server accepts one of them.
    """

    async def accept_with_subprotocol(message: Message) -> None:
        if message.get("type") == "websocket.accept" and not message.get("subprotocol"):
            message = {**message, "subprotocol": TOKEN_SUBPROTOCOL}
        await send(message)

    return accept_with_subprotocol


class TokenAuthMiddleware(BaseMiddleware):
    """Sets ``scope['user']`` from a token, for clients that cannot send cookies (hubbub extra).

    ``resolve(token)`` (a plain function, run in the ORM's thread, or a coroutine
    function) returns the user or ``None``. A connection with a token gets that user,
    or ``AnonymousUser`` when the token is not valid; one without a token keeps the user
    an outer ``AuthMiddleware`` found, or ``AnonymousUser``. The token is never logged.

    A token offered as a subprotocol (see ``token_subprotocols``) is taken out of
    ``scope['subprotocols']``, and the handshake is accepted with ``hubbub.token``
    unless the application accepts with a subprotocol of its own.
    """

    def __init__(self, inner: ASGIApp, resolve: TokenResolver):
        super().__init__(inner)
        if inspect.iscoroutinefunction(resolve) or inspect.iscoroutinefunction(type(resolve).__call__):
            self._resolve = resolve
        else:
            self._resolve = database_sync_to_async(resolve)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope = dict(scope)
        token = token_from_scope(scope)
        offered = scope.get("subprotocols") or []
        if any(_is_token_subprotocol(subprotocol) for subprotocol in offered):
            scope["subprotocols"] = [subprotocol for subprotocol in offered if not _is_token_subprotocol(subprotocol)]
            if TOKEN_SUBPROTOCOL in offered:
                send = _accepting_with_token_subprotocol(send)
        if token == "":
            logger.info(
                "token refused for %s (client %s): the hubbub.token subprotocol does not hold base64url text",
                scope.get("path"),
                scope.get("client"),
            )
            scope["user"] = _anonymous()
        elif token is not None:
            user = await self._resolve(token)
            if user is None:
                logger.info("token refused for %s (client %s)", scope.get("path"), scope.get("client"))
                user = _anonymous()
            scope["user"] = user
        elif "user" not in scope:
            scope["user"] = _anonymous()
        return await self.inner(scope, receive, send)

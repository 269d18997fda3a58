"""Cookies and Django sessions in the connection scope: ``scope['cookies']``, ``scope['session']``.

``SessionMiddlewareStack(inner)`` is what a routing file uses. The session is loaded
(in the ORM's thread) before the inner application starts, so consumer code may read
``self.scope['session']`` directly; writes are saved with ``scope['session'].save()``
(``await scope['session'].asave()`` or ``database_sync_to_async`` from async code), as in
Channels. HTTP consumers also get Django's behaviour: a modified session is saved and its
cookie set when the response starts.
"""

from __future__ import annotations

import datetime
import time
from http.cookies import SimpleCookie
from importlib import import_module
from typing import Any, List, Optional, Union

from django.conf import settings
from django.contrib.sessions.backends.base import SessionBase, UpdateError
from django.core.exceptions import SuspiciousOperation
from django.http.cookie import parse_cookie
from django.utils.functional import LazyObject
from django.utils.http import http_date

from .db import database_sync_to_async
from .typing import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "CookieMiddleware",
    "InstanceSessionWrapper",
    "SessionMiddleware",
    "SessionMiddlewareStack",
    "database_sync_to_async",
]

_SAMESITE_VALUES = ("lax", "strict", "none")


class InvalidSameSite(ValueError, AssertionError):
    """A ``samesite`` value other than lax/strict/none: Django's type and Channels' type at once."""


class CookieMiddleware:
    """Parses the request's ``Cookie`` headers into ``scope['cookies']`` (a dict of str)."""

    def __init__(self, inner: ASGIApp):
        self.inner = inner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        cookie_headers = [value for name, value in scope.get("headers", ()) if name == b"cookie"]
        # Several Cookie headers (HTTP/2 splits them) are one list joined by "; " (RFC 9113 §8.2.3).
        raw = b"; ".join(cookie_headers).decode("latin-1")
        return await self.inner(dict(scope, cookies=parse_cookie(raw)), receive, send)

    @classmethod
    def set_cookie(
        cls,
        message: Message,
        key: str,
        value: str = "",
        max_age: Optional[int] = None,
        expires: Union[str, datetime.datetime, None] = None,
        path: str = "/",
        domain: Optional[str] = None,
        secure: bool = False,
        httponly: bool = False,
        samesite: Optional[str] = "lax",
    ) -> None:
        """Add a ``Set-Cookie`` header to an ``http.response.start`` message, as ``HttpResponse.set_cookie``."""
        cookie: SimpleCookie = SimpleCookie()
        cookie[key] = value
        morsel = cookie[key]
        if isinstance(expires, datetime.datetime):
            if expires.tzinfo is not None:
                expires = expires.astimezone(datetime.timezone.utc)
            expires = http_date(expires.replace(tzinfo=datetime.timezone.utc).timestamp())
        if max_age is not None:
            morsel["max-age"] = int(max_age)
            if not expires:
                expires = http_date(time.time() + int(max_age))
        if expires:
            morsel["expires"] = expires
        if path is not None:
            morsel["path"] = path
        if domain:
            morsel["domain"] = domain
        if secure:
            morsel["secure"] = True
        if httponly:
            morsel["httponly"] = True
        if samesite:
            if samesite.lower() not in _SAMESITE_VALUES:
                raise InvalidSameSite(f'samesite must be "lax", "none", or "strict", not {samesite!r}.')
            morsel["samesite"] = samesite
        header = morsel.OutputString().encode("latin-1")
        message["headers"] = [*message.get("headers", ()), (b"Set-Cookie", header)]

    @classmethod
    def delete_cookie(cls, message: Message, key: str, path: str = "/", domain: Optional[str] = None) -> None:
        """Add a ``Set-Cookie`` header that makes the browser drop cookie ``key``."""
        cls.set_cookie(message, key, max_age=0, path=path, domain=domain, expires="Thu, 01 Jan 1970 00:00:00 GMT")


def _load_session(engine: Any, session_key: Optional[str]) -> SessionBase:
    """A session store with its data already read (so async code can use it without the ORM)."""
    store = engine.SessionStore(session_key)
    store.keys()  # reads the backend now, here in the ORM's thread, rather than on first use
    return store


class InstanceSessionWrapper:
    """One connection's session: loads it, and saves it when an HTTP response starts.

    Channels' name and shape: ``scope`` (a copy carrying ``'session'``), ``send`` (use it
    in place of the server's), ``resolve_session()`` and ``save_session()``.
    """

    save_message_types: List[str] = ["http.response.start"]
    cookie_response_message_types: List[str] = ["http.response.start"]

    def __init__(self, scope: Scope, send: Send):
        self.cookie_name = settings.SESSION_COOKIE_NAME
        self.session_engine = import_module(settings.SESSION_ENGINE)
        self.scope = dict(scope)
        # An outer SessionMiddleware already did the work: leave its session alone.
        self.activated = "session" not in self.scope
        if self.activated:
            self.scope["session"] = LazyObject()
        self.real_send = send

    async def resolve_session(self) -> None:
        """Load the session named by the request's session cookie (a new empty one if none or invalid)."""
        if not self.activated:
            return
        if "cookies" not in self.scope:
            raise ValueError("SessionMiddleware needs CookieMiddleware outside it; use SessionMiddlewareStack.")
        session_key = self.scope["cookies"].get(self.cookie_name)
        self.scope["session"]._wrapped = await database_sync_to_async(_load_session)(self.session_engine, session_key)

    async def send(self, message: Message) -> None:
        """Pass ``message`` on, first saving the session and setting its cookie for a response."""
        if self.activated and message["type"] in self.save_message_types and message.get("status") != 500:
            message = dict(message)
            await self._save_for_response(message)
        return await self.real_send(message)

    async def _save_for_response(self, message: Message) -> None:
        session: SessionBase = self.scope["session"]
        if session.is_empty():
            if self.cookie_name in self.scope["cookies"]:
                CookieMiddleware.delete_cookie(
                    message, self.cookie_name, path=settings.SESSION_COOKIE_PATH, domain=settings.SESSION_COOKIE_DOMAIN
                )
            return
        if not (session.modified or settings.SESSION_SAVE_EVERY_REQUEST):
            return
        await self.save_session()
        if message["type"] not in self.cookie_response_message_types:
            return
        if session.get_expire_at_browser_close():
            max_age, expires = None, None
        else:
            max_age = session.get_expiry_age()
            expires = http_date(time.time() + max_age)
        CookieMiddleware.set_cookie(
            message,
            self.cookie_name,
            session.session_key,
            max_age=max_age,
            expires=expires,
            path=settings.SESSION_COOKIE_PATH,
            domain=settings.SESSION_COOKIE_DOMAIN,
            secure=settings.SESSION_COOKIE_SECURE or False,
            httponly=settings.SESSION_COOKIE_HTTPONLY or False,
            samesite=settings.SESSION_COOKIE_SAMESITE,
        )

    async def save_session(self) -> None:
        """Save the session now (in the ORM's thread).

        ``SuspiciousOperation`` when the session was deleted meanwhile (a logout in another
        tab): raised out of the response start's ``send()``, which is then not sent on.
        """
        try:
            await database_sync_to_async(self.scope["session"].save)()
        except UpdateError:
            raise SuspiciousOperation(
                "The request's session was deleted before the request completed. The user may have "
                "logged out in a concurrent request, for example."
            ) from None


class SessionMiddleware:
    """Puts the Django session named by the session cookie in ``scope['session']``.

    Needs ``CookieMiddleware`` outside it; ``SessionMiddlewareStack`` builds both.
    """

    def __init__(self, inner: ASGIApp):
        self.inner = inner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        wrapper = InstanceSessionWrapper(scope, send)
        await wrapper.resolve_session()
        return await self.inner(wrapper.scope, receive, wrapper.send)


def SessionMiddlewareStack(inner: ASGIApp) -> ASGIApp:  # noqa: N802  (Channels' name)
    """Cookies, then the session: ``scope['cookies']`` and ``scope['session']`` for ``inner``."""
    return CookieMiddleware(SessionMiddleware(inner))


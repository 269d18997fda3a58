"""Refuse WebSocket handshakes from pages on other sites (cross-site WebSocket hijacking).

Browsers send the page's origin with every WebSocket handshake and, unlike for
fetches, nothing stops a page on any site from opening a socket to yours with your
users' cookies. ``OriginValidator`` checks that header before the application sees
the connection; a refused handshake is closed before accept, which servers answer
with HTTP 403.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from urllib.parse import ParseResult, urlparse

from django.conf import settings

from ..generic.websocket import AsyncWebsocketConsumer
from ..typing import ASGIApp, Receive, Scope, Send

__all__ = ["AllowedHostsOriginValidator", "AsyncWebsocketConsumer", "OriginValidator", "WebsocketDenier"]

logger = logging.getLogger("hubbub.security")

#: Ports implied by a scheme when the origin names none (RFC 6454 §4 uses the URL's default port).
DEFAULT_PORTS = {"http": 80, "ws": 80, "https": 443, "wss": 443}

#: What Django's ``runserver`` accepts with ``DEBUG`` on and ``ALLOWED_HOSTS`` empty.
DEBUG_LOCAL_HOSTS = [".localhost", "127.0.0.1", "[::1]"]


def _host_matches(host: str, pattern: str) -> bool:
    """``host`` equals ``pattern``, or ``pattern`` is ``.example.com`` and host is it or under it."""
    pattern = pattern.lower()
    if pattern.startswith("."):
        return host == pattern[1:] or host.endswith(pattern)
    return host == pattern


class WebsocketDenier(AsyncWebsocketConsumer):
    """Refuses every connection (before accept, so the client gets HTTP 403)."""

    async def connect(self) -> None:
        await self.close()


class OriginValidator:
    """Lets a WebSocket through only when its ``Origin`` matches one of ``allowed_origins``.

    Patterns: ``"*"`` (anything, even no Origin header), a host (``"example.com"``, any
    scheme and port; ``"example.com:8000"`` fixes the port), a ``.example.com`` pattern
    (the domain and every subdomain), or a full origin (``"https://example.com:8443"``:
    scheme, host and port must all match). A missing or unparseable Origin is refused
    unless ``"*"`` is allowed.
    """

    def __init__(self, application: ASGIApp, allowed_origins: Iterable[str]):
        self.application = application
        self.allowed_origins: list[str] = list(allowed_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            raise ValueError(f"OriginValidator only guards WebSocket connections, not {scope['type']!r} ones.")
        origin: ParseResult | None = None
        raw: bytes | None = None
        for name, value in scope.get("headers", ()):
            if name == b"origin":
                raw = value
                try:
                    origin = urlparse(value.decode("latin-1"))
                except ValueError:  # e.g. an unbalanced "[" in the host
                    origin = None
                break
        if self.valid_origin(origin):
            return await self.application(scope, receive, send)
        logger.warning(
            "WebSocket to %s refused: Origin %s is not allowed",
            scope.get("path"),
            repr(raw.decode("latin-1")) if raw is not None else "header missing",
        )
        return await WebsocketDenier()(scope, receive, send)

    def valid_origin(self, parsed_origin: ParseResult | None) -> bool:
        """Whether the connection may proceed (a missing origin only with ``"*"``)."""
        if parsed_origin is None and "*" not in self.allowed_origins:
            return False
        return self.validate_origin(parsed_origin)

    def validate_origin(self, parsed_origin: ParseResult | None) -> bool:
        """Whether any allowed pattern matches ``parsed_origin``."""
        return any(
            pattern == "*" or self.match_allowed_origin(parsed_origin, pattern) for pattern in self.allowed_origins
        )

    def match_allowed_origin(self, parsed_origin: ParseResult | None, pattern: str) -> bool:
        """Whether ``parsed_origin`` matches the one ``pattern`` (see the class docstring)."""
        if parsed_origin is None:
            return False
        try:
            host = parsed_origin.hostname
        except ValueError:
            return False
        if not host:
            return False
        pattern = pattern.lower()
        parsed_pattern = urlparse(pattern)
        if not parsed_pattern.scheme or not parsed_pattern.netloc:
            # A bare host pattern; a port, when it names one, must match too.
            bare = urlparse("//" + pattern)
            if bare.port is not None and bare.port != self.get_origin_port(parsed_origin):
                return False
            return _host_matches(host, bare.hostname or pattern)
        return (
            parsed_pattern.scheme == parsed_origin.scheme
            and self.get_origin_port(parsed_pattern) == self.get_origin_port(parsed_origin)
            and _host_matches(host, parsed_pattern.hostname or "")
        )

    def get_origin_port(self, origin: ParseResult | None) -> int | None:
        """The origin's port, or its scheme's default (``None`` when neither is known)."""
        if origin is None:
            return None
        try:
            port = origin.port
        except ValueError:  # a port that is not a number, or out of range
            return None
        if port is not None:
            return port
        return DEFAULT_PORTS.get(origin.scheme)


def AllowedHostsOriginValidator(application: ASGIApp) -> OriginValidator:  # noqa: N802  (Channels' name)
    """An ``OriginValidator`` allowing the hosts in ``ALLOWED_HOSTS`` (Django's local defaults in DEBUG)."""
    allowed_hosts = list(settings.ALLOWED_HOSTS)
    if settings.DEBUG and not allowed_hosts:
        allowed_hosts = DEBUG_LOCAL_HOSTS
    return OriginValidator(application, allowed_hosts)

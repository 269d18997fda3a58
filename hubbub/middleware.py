"""The base class for ASGI middleware that adds to the scope."""

from __future__ import annotations

from .typing import ASGIApp, Receive, Scope, Send


class BaseMiddleware:
    """Wraps an inner application; subclasses override ``__call__`` to change the scope.

    The scope is copied first so one connection's additions never leak to another.
    """

    def __init__(self, inner: ASGIApp):
        self.inner = inner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope = dict(scope)
        return await self.inner(scope, receive, send)

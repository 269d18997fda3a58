"""Routers: pick the application for a connection by protocol, URL path or channel name."""

from __future__ import annotations

import importlib
import logging
from typing import Any, Awaitable, Callable, Dict, Iterable, List

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.urls.exceptions import Resolver404
from django.urls.resolvers import RoutePattern, URLResolver

from .typing import ASGIApp, Receive, Scope, Send
from .utils import name_that_thing

__all__ = ["ChannelNameRouter", "NoRouteFound", "ProtocolTypeRouter", "URLRouter", "get_default_application"]

logger = logging.getLogger("hubbub.routing")


class NoRouteFound(ValueError):
    """The outermost ``URLRouter`` matched no route (a ``ValueError``, as in Channels).

    ``clean`` is true when no application was called on the way (nothing can have been
    sent), so ``ProtocolTypeRouter`` may still answer the client itself.
    """

    def __init__(self, message: str, clean: bool = True):
        super().__init__(message)
        self.clean = clean


class NoNestedRoute(Resolver404):
    """A nested ``URLRouter`` matched no route: the outer router goes on to its next route."""

    def __init__(self, message: str, clean: bool = True):
        super().__init__(message)
        self.clean = clean


def get_default_application() -> ASGIApp:
    """The application named by the ``ASGI_APPLICATION`` setting (``"module.path.attribute"``)."""
    path = getattr(settings, "ASGI_APPLICATION", None)
    if not path:
        raise ImproperlyConfigured(
            "ASGI_APPLICATION is not set: point it at your application, e.g. "
            "ASGI_APPLICATION = 'mysite.asgi.application'"
        )
    module_name, _, attribute = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ImproperlyConfigured(f"ASGI_APPLICATION = {path!r}: cannot import module {module_name!r} ({exc})")
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise ImproperlyConfigured(f"ASGI_APPLICATION = {path!r}: module {module_name!r} has no {attribute!r}")


class ProtocolTypeRouter:
    """Routes on ``scope['type']``: ``{'http': django_asgi_app, 'websocket': URLRouter(...)}``."""

    def __init__(self, application_mapping: Dict[str, ASGIApp]):
        self.application_mapping = application_mapping

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            application = self.application_mapping[scope["type"]]
        except KeyError:
            raise ValueError(f"No application configured for scope type {scope['type']!r}")
        try:
            return await application(scope, receive, send)
        except NoRouteFound as exc:
            refuse = _NO_ROUTE_ANSWERS.get(scope["type"])
            if refuse is None or not exc.clean:
                raise
            await refuse(scope, send)


async def _refuse_websocket(scope: Scope, send: Send) -> None:
    """Refuse the handshake (the server answers HTTP 403) and log one line."""
    logger.warning("WebSocket %r refused (403): no route matches this path.", scope.get("path"))
    await send({"type": "websocket.close", "code": 1000})


async def _not_found(scope: Scope, send: Send) -> None:
    """Answer 404 and log one line."""
    logger.warning("HTTP %s %r: 404, no route matches this path.", scope.get("method", "GET"), scope.get("path"))
    await send({"type": "http.response.start", "status": 404,
                "headers": [(b"content-type", b"text/plain; charset=utf-8")]})
    await send({"type": "http.response.body", "body": b"Not Found"})


#: How ``ProtocolTypeRouter`` answers a connection its routers found no route for.
_NO_ROUTE_ANSWERS: Dict[str, Callable[[Scope, Send], Awaitable[None]]] = {"websocket": _refuse_websocket, "http": _not_found}


_warned_classes: set = set()


def _as_application(route: Any, callback: Any) -> ASGIApp:
    """Accept a consumer class where an application is expected (Channels 2 style), warning once."""
    if isinstance(callback, type) and hasattr(callback, "as_asgi"):
        if callback not in _warned_classes:
            _warned_classes.add(callback)
            logger.warning(
                "Route %r points at the consumer class %s; use %s.as_asgi() (treated as that here).",
                str(route.pattern), name_that_thing(callback), callback.__name__,
            )
        return callback.as_asgi()
    return callback


class URLRouter:
    """Routes on the URL path with Django's ``path()``/``re_path()``; nests with ``include``-like routers.

    Sets ``scope['url_route'] = {'args': ..., 'kwargs': ...}`` (kwargs converted by the
    path converters) and, for nested routers, ``scope['path_remaining']``.
    """

    _path_routing = True  # marks routers that take the rest of a path from an outer one

    def __init__(self, routes: Iterable[Any]):
        self.routes: List[Any] = list(routes)
        for route in self.routes:
            if isinstance(route, URLResolver):
                raise ImproperlyConfigured(
                    f"{route}: include() is not supported in URLRouter. Use nested URLRouter instances instead."
                )
            callback = route.callback
            if getattr(callback, "_path_routing", False):
                # A prefix route: the pattern matches a prefix and the nested router the rest.
                pattern = route.pattern
                source = pattern._route if isinstance(pattern, RoutePattern) else pattern._regex
                route.pattern = type(pattern)(source, pattern.name, is_endpoint=False)
            route.callback = _as_application(route, callback)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = self._path_to_route(scope)
        clean = True  # no application called yet
        for route in self.routes:
            try:
                match = route.pattern.match(path)
            except Resolver404:
                continue
            if not match:
                continue
            new_path, args, kwargs = match
            try:
                return await route.callback(self._child_scope(scope, route, new_path, args, kwargs), receive, send)
            except Resolver404 as exc:
                # A nested router matched nothing (its whole call included): try the next route.
                clean = clean and getattr(exc, "clean", False)
        if "path_remaining" in scope:
            raise NoNestedRoute(f"No route found for path {path!r}.", clean)
        raise NoRouteFound(f"No route found for path {path!r}.", clean)

    @staticmethod
    def _path_to_route(scope: Scope) -> str:
        """The part of the path this router matches: the rest after an outer router, else the path."""
        path = scope.get("path_remaining")
        if path is None:
            path = scope.get("path")
            if path is None:
                raise ValueError("No 'path' key in the connection scope; URLRouter cannot route it.")
            root_path = scope.get("root_path", "")
            if root_path:
                if not path.startswith(root_path):
                    raise NoRouteFound(f"No route found for path {path!r} (outside root_path {root_path!r}).")
                path = path[len(root_path):]
        return path.lstrip("/")

    @staticmethod
    def _child_scope(scope: Scope, route: Any, new_path: str, args: Any, kwargs: Dict[str, Any]) -> Scope:
        outer = scope.get("url_route", {"args": (), "kwargs": {}})
        return dict(
            scope,
            path_remaining=new_path,
            url_route={
                "args": tuple(outer["args"]) + tuple(args),
                "kwargs": {**outer["kwargs"], **kwargs, **(route.default_args or {})},
            },
        )


class ChannelNameRouter:
    """Routes ``channel`` scopes (from ``runworker``) on ``scope['channel']``."""

    def __init__(self, application_mapping: Dict[str, ASGIApp]):
        self.application_mapping = {name: _as_worker_app(app) for name, app in application_mapping.items()}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if "channel" not in scope:
            raise ValueError("ChannelNameRouter got a scope without a 'channel' key; is it behind a ProtocolTypeRouter?")
        try:
            application = self.application_mapping[scope["channel"]]
        except KeyError:
            raise ValueError(f"No application configured for channel name {scope['channel']!r}")
        return await application(scope, receive, send)


def _as_worker_app(app: Any) -> ASGIApp:
    if isinstance(app, type) and hasattr(app, "as_asgi"):
        return app.as_asgi()
    return app

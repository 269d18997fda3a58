"""Routers: by protocol, by URL (path and re_path, nested), by channel name; default application."""

from __future__ import annotations

import logging

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings
from django.urls import Resolver404, include, path, re_path

from hubbub.consumer import AsyncConsumer
from hubbub.generic.websocket import AsyncJsonWebsocketConsumer
from hubbub.routing import ChannelNameRouter, ProtocolTypeRouter, URLRouter, get_default_application
from hubbub.testing import ApplicationCommunicator, WebsocketCommunicator


class ShowRoute(AsyncJsonWebsocketConsumer):
    """Accepts, then sends what routing put in the scope."""

    async def connect(self):
        await self.accept()
        await self.send_json(
            {
                "args": list(self.scope["url_route"]["args"]),
                "kwargs": self.scope["url_route"]["kwargs"],
                "remaining": self.scope.get("path_remaining"),
            }
        )


async def route(app, url):
    comm = WebsocketCommunicator(app, url)
    await comm.connect()
    result = await comm.receive_json_from()
    await comm.disconnect()
    return result


async def test_path_converters_convert_kwargs():
    app = URLRouter([path("ws/room/<int:room_id>/<slug:name>/", ShowRoute.as_asgi())])
    result = await route(app, "/ws/room/42/the-den/")
    assert result["kwargs"] == {"room_id": 42, "name": "the-den"}


async def test_re_path_named_and_positional_groups():
    app = URLRouter(
        [
            re_path(r"^ws/named/(?P<room>\w+)/$", ShowRoute.as_asgi()),
            re_path(r"^ws/pos/(\d+)/$", ShowRoute.as_asgi()),
        ]
    )
    assert (await route(app, "/ws/named/lobby/"))["kwargs"] == {"room": "lobby"}
    assert (await route(app, "/ws/pos/7/"))["args"] == ["7"]


async def test_nested_routers_pass_the_rest_of_the_path_and_merge_kwargs():
    inner = URLRouter([path("chat/<str:room>/", ShowRoute.as_asgi())])
    app = URLRouter([path("ws/<str:tenant>/", inner)])
    result = await route(app, "/ws/acme/chat/general/")
    assert result["kwargs"] == {"tenant": "acme", "room": "general"}
    assert result["remaining"] == ""


async def test_nested_re_path_router():
    inner = URLRouter([re_path(r"^(?P<room>\w+)/$", ShowRoute.as_asgi())])
    app = URLRouter([re_path(r"^ws/(?P<tenant>\w+)/", inner)])
    assert (await route(app, "/ws/acme/lobby/"))["kwargs"] == {"tenant": "acme", "room": "lobby"}


async def test_route_default_kwargs_are_included():
    app = URLRouter([path("ws/", ShowRoute.as_asgi(), {"mode": "default"})])
    assert (await route(app, "/ws/"))["kwargs"] == {"mode": "default"}


async def test_root_path_is_stripped_before_matching():
    app = URLRouter([path("ws/", ShowRoute.as_asgi())])
    comm = WebsocketCommunicator(app, "/prefix/ws/")
    comm.scope["root_path"] = "/prefix"
    assert (await comm.connect())[0]
    await comm.disconnect()


async def test_unmatched_path_raises_value_error_naming_it():
    app = URLRouter([path("ws/", ShowRoute.as_asgi())])
    comm = WebsocketCommunicator(app, "/nowhere/")
    with pytest.raises(ValueError, match="No route found for path 'nowhere/'"):
        await comm.connect()


async def test_unmatched_converter_value_does_not_match():
    app = URLRouter([path("ws/<int:n>/", ShowRoute.as_asgi())])
    with pytest.raises(ValueError, match="No route found"):
        await WebsocketCommunicator(app, "/ws/abc/").connect()


def test_include_is_refused_with_channels_wording():
    """URLRouter given include(): ImproperlyConfigured naming the route, in Channels' words."""
    route = path("ws/", include([]))
    with pytest.raises(ImproperlyConfigured) as info:
        URLRouter([route])
    assert (
        str(info.value) == f"{route}: include() is not supported in URLRouter. Use nested URLRouter instances instead."
    )


async def test_nested_router_without_a_match_falls_through_to_the_next_route():
    """An inner router that matches nothing lets the outer router try its next route."""
    inner = URLRouter([path("chat/<str:room>/", ShowRoute.as_asgi())])
    app = URLRouter(
        [
            path("ws/<str:tenant>/", inner),
            path("ws/<str:tenant>/feed/", ShowRoute.as_asgi(), {"route": "feed"}),
        ]
    )
    assert (await route(app, "/ws/acme/feed/"))["kwargs"] == {"tenant": "acme", "route": "feed"}
    assert (await route(app, "/ws/acme/chat/lobby/"))["kwargs"] == {"tenant": "acme", "room": "lobby"}


async def test_fall_through_covers_the_whole_call_into_the_inner_application():
    """A Resolver404 from an inner router behind middleware is caught too: the next route is tried."""
    inner = URLRouter([path("chat/<str:room>/", ShowRoute.as_asgi())])
    tried = []

    async def middleware(scope, receive, send):
        tried.append(scope["path_remaining"])
        return await inner(scope, receive, send)

    app = URLRouter([re_path(r"^ws/", middleware), path("ws/feed/", ShowRoute.as_asgi(), {"route": "feed"})])
    assert (await route(app, "/ws/feed/"))["kwargs"] == {"route": "feed"}
    assert tried == ["feed/"]


async def test_only_the_outermost_router_raises_value_error():
    """No route anywhere: the inner router raises Resolver404, the outermost ValueError naming the path."""
    inner = URLRouter([path("chat/<str:room>/", ShowRoute.as_asgi())])
    app = URLRouter([path("ws/<str:tenant>/", inner)])
    with pytest.raises(ValueError, match=r"^No route found for path 'ws/acme/nowhere/'\.$"):
        await WebsocketCommunicator(app, "/ws/acme/nowhere/").connect()
    nested_scope = {"type": "websocket", "path": "/ws/acme/nowhere/", "path_remaining": "nowhere/"}
    with pytest.raises(Resolver404) as info:
        await inner(nested_scope, None, None)
    assert not isinstance(info.value, ValueError)


async def test_protocol_type_router_refuses_a_websocket_with_no_route(caplog):
    """Behind ProtocolTypeRouter, a WebSocket path with no route is refused with one WARNING."""
    app = ProtocolTypeRouter({"websocket": URLRouter([path("ws/chat/<str:room>/", ShowRoute.as_asgi())])})
    with caplog.at_level(logging.WARNING):
        connected, _ = await WebsocketCommunicator(app, "/ws/chat/lobby").connect()
    assert not connected
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("WARNING", "WebSocket '/ws/chat/lobby' refused (403): no route matches this path.")
    ]


async def test_protocol_type_router_does_not_refuse_after_an_application_ran():
    """No route found after an application was called (it may have accepted): the ValueError stands."""

    class AcceptsThenGivesUp(AsyncConsumer):
        async def websocket_connect(self, message):
            await self.send({"type": "websocket.accept"})
            raise Resolver404("not mine after all")

    app = ProtocolTypeRouter({"websocket": URLRouter([path("ws/", AcceptsThenGivesUp.as_asgi())])})
    comm = WebsocketCommunicator(app, "/ws/")
    with pytest.raises(ValueError, match="No route found for path 'ws/'"):
        await comm.connect()
        await comm.receive_output()


async def test_protocol_type_router_answers_404_for_http_with_no_route(caplog):
    """Behind ProtocolTypeRouter, an HTTP path with no route gets 404 and one WARNING."""
    app = ProtocolTypeRouter({"http": URLRouter([path("api/", AsyncConsumer.as_asgi())])})
    with caplog.at_level(logging.WARNING):
        comm = ApplicationCommunicator(app, {"type": "http", "method": "GET", "path": "/nope/"})
        await comm.send_input({"type": "http.request", "body": b""})
        start = await comm.receive_output()
        body = await comm.receive_output()
    assert start["status"] == 404 and body["body"] == b"Not Found"
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("WARNING", "HTTP GET '/nope/': 404, no route matches this path.")
    ]


async def test_a_consumer_class_without_as_asgi_works_and_warns_once(caplog):
    class OldStyle(ShowRoute):
        pass

    with caplog.at_level(logging.WARNING, logger="hubbub.routing"):
        app = URLRouter([path("ws/a/", OldStyle), path("ws/b/", OldStyle)])
    assert caplog.text.count("use OldStyle.as_asgi()") == 1
    assert (await route(app, "/ws/a/"))["kwargs"] == {}


async def test_protocol_type_router_picks_by_scope_type():
    class Http(AsyncConsumer):
        async def http_request(self, message):
            await self.send({"type": "http.response.start", "status": 204, "headers": []})
            await self.send({"type": "http.response.body", "body": b""})

    app = ProtocolTypeRouter({"http": Http.as_asgi(), "websocket": URLRouter([path("ws/", ShowRoute.as_asgi())])})
    comm = ApplicationCommunicator(app, {"type": "http", "path": "/"})
    await comm.send_input({"type": "http.request", "body": b""})
    assert (await comm.receive_output())["status"] == 204
    assert (await route(app, "/ws/"))["kwargs"] == {}


async def test_unknown_scope_type_raises_value_error_naming_it():
    app = ProtocolTypeRouter({"http": ShowRoute.as_asgi()})
    comm = ApplicationCommunicator(app, {"type": "lifespan"})
    with pytest.raises(ValueError, match="No application configured for scope type 'lifespan'"):
        await comm.receive_output()


async def test_channel_name_router_routes_worker_channels():
    class Thumbs(AsyncConsumer):
        async def thumbnail_make(self, message):
            await self.send({"type": "done", "channel": self.scope["channel"]})

    app = ChannelNameRouter({"thumbnails": Thumbs})
    comm = ApplicationCommunicator(app, {"type": "channel", "channel": "thumbnails"})
    await comm.send_input({"type": "thumbnail.make"})
    assert await comm.receive_output() == {"type": "done", "channel": "thumbnails"}
    comm.stop()

    bad = ApplicationCommunicator(app, {"type": "channel", "channel": "missing"})
    with pytest.raises(ValueError, match="No application configured for channel name 'missing'"):
        await bad.receive_output()
    no_channel = ApplicationCommunicator(app, {"type": "channel"})
    with pytest.raises(ValueError, match="without a 'channel' key"):
        await no_channel.receive_output()


def test_get_default_application_reads_asgi_application():
    from tests.asgi_app import application

    assert get_default_application() is application


@pytest.mark.parametrize(
    "value, message",
    [
        (None, "ASGI_APPLICATION is not set"),
        ("nowhere.app", "cannot import module 'nowhere'"),
        ("tests.asgi_app.missing", "has no 'missing'"),
    ],
)
def test_get_default_application_errors_name_the_setting(value, message):
    with override_settings(ASGI_APPLICATION=value), pytest.raises(ImproperlyConfigured, match=message):
        get_default_application()

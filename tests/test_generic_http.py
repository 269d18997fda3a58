"""AsyncHttpConsumer: whole responses, streaming, Server-Sent Events and disconnects."""

from __future__ import annotations

import asyncio

import pytest

from hubbub.generic.http import AsyncHttpConsumer
from hubbub.layers import get_channel_layer
from hubbub.testing import ApplicationCommunicator, HttpCommunicator


class Hello(AsyncHttpConsumer):
    async def handle(self, body):
        await self.send_response(200, b"hello " + body, headers=[(b"Content-Type", b"text/plain")])


async def test_send_response_returns_status_headers_and_body():
    comm = HttpCommunicator(Hello.as_asgi(), "POST", "/hello/", body=b"world")
    response = await comm.get_response()
    assert response == {"status": 200, "headers": [(b"Content-Type", b"text/plain")], "body": b"hello world"}
    await comm.wait()


async def test_request_body_in_several_chunks_is_joined():
    comm = ApplicationCommunicator(Hello.as_asgi(), {"type": "http", "method": "POST", "path": "/"})
    await comm.send_input({"type": "http.request", "body": b"a", "more_body": True})
    await comm.send_input({"type": "http.request", "body": b"b", "more_body": False})
    assert (await comm.receive_output())["status"] == 200
    assert (await comm.receive_output())["body"] == b"hello ab"


async def test_headers_may_be_a_dict():
    class DictHeaders(AsyncHttpConsumer):
        async def handle(self, body):
            await self.send_response(201, b"", headers={b"X-A": b"1"})

    response = await HttpCommunicator(DictHeaders.as_asgi(), "GET", "/").get_response()
    assert response["status"] == 201 and response["headers"] == [(b"X-A", b"1")]


class Clock(AsyncHttpConsumer):
    """A Server-Sent Events stream that never ends by itself."""

    disconnected = None

    async def handle(self, body):
        await self.send_headers(headers=[(b"Content-Type", b"text/event-stream"), (b"Cache-Control", b"no-cache")])
        n = 0
        while True:
            await self.send_body(f"data: {n}\n\n".encode(), more_body=True)
            n += 1
            await asyncio.sleep(0.01)

    async def disconnect(self):
        type(self).disconnected = True


async def test_endless_sse_stream_is_cancelled_when_the_client_disconnects():
    comm = ApplicationCommunicator(Clock.as_asgi(), {"type": "http", "method": "GET", "path": "/"})
    await comm.send_input({"type": "http.request", "body": b""})
    start = await comm.receive_output()
    assert dict(start["headers"])[b"Content-Type"] == b"text/event-stream"
    first = await comm.receive_output()
    second = await comm.receive_output()
    assert (first["body"], second["body"]) == (b"data: 0\n\n", b"data: 1\n\n")
    assert first["more_body"] is True
    await comm.send_input({"type": "http.disconnect"})
    await comm.wait(1)
    assert Clock.disconnected is True


class GroupStream(AsyncHttpConsumer):
    """Opens an event stream, then forwards ``stream.event`` group messages into it."""

    async def handle(self, body):
        await self.channel_layer.group_add("stream", self.channel_name)
        await self.send_headers(headers=[(b"Content-Type", b"text/event-stream")])
        await self.send_body(b"", more_body=True)

    async def stream_event(self, event):
        await self.send_body(f"data: {event['text']}\n\n".encode(), more_body=not event.get("last"))

    async def disconnect(self):
        await self.channel_layer.group_discard("stream", self.channel_name)


async def test_response_left_open_receives_layer_messages_until_finished():
    comm = ApplicationCommunicator(GroupStream.as_asgi(), {"type": "http", "method": "GET", "path": "/"})
    await comm.send_input({"type": "http.request", "body": b""})
    assert (await comm.receive_output())["type"] == "http.response.start"
    assert (await comm.receive_output())["body"] == b""
    layer = get_channel_layer()
    await layer.group_send("stream", {"type": "stream.event", "text": "one"})
    assert (await comm.receive_output())["body"] == b"data: one\n\n"
    await layer.group_send("stream", {"type": "stream.event", "text": "two", "last": True})
    last = await comm.receive_output()
    assert last == {"type": "http.response.body", "body": b"data: two\n\n", "more_body": False}
    await comm.wait(1)  # finishing the response ended the consumer
    assert await layer.group_count("stream") == 0


async def test_handle_error_reaches_the_server():
    class Broken(AsyncHttpConsumer):
        async def handle(self, body):
            raise RuntimeError("no page")

    comm = HttpCommunicator(Broken.as_asgi(), "GET", "/")
    with pytest.raises(RuntimeError, match="no page"):
        await comm.get_response()


async def test_send_body_refuses_str():
    class Text(AsyncHttpConsumer):
        async def handle(self, body):
            await self.send_headers()
            await self.send_body("text")

    with pytest.raises(TypeError, match="needs bytes, not str"):
        await HttpCommunicator(Text.as_asgi(), "GET", "/").get_response()


async def test_missing_handle_says_so():
    comm = HttpCommunicator(AsyncHttpConsumer.as_asgi(), "GET", "/")
    with pytest.raises(NotImplementedError, match="must provide a handle"):
        await comm.get_response()

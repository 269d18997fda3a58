"""WebSocket consumers, sync and async, plain and JSON, driven through the communicator."""

from __future__ import annotations

import asyncio

import pytest
from django.urls import path

from hubbub.exceptions import AcceptConnection, DenyConnection, InvalidChannelLayerError
from hubbub.generic.websocket import (
    AsyncJsonWebsocketConsumer,
    AsyncWebsocketConsumer,
    JsonWebsocketConsumer,
    WebsocketConsumer,
)
from hubbub.layers import get_channel_layer
from hubbub.routing import URLRouter
from hubbub.testing import WebsocketCommunicator


class AsyncEcho(AsyncWebsocketConsumer):
    groups = ["everyone"]

    async def connect(self):
        if self.scope["subprotocols"]:
            await self.accept(self.scope["subprotocols"][-1], headers=[(b"x-hello", b"1")])
        else:
            await self.accept()

    async def receive(self, text_data=None, bytes_data=None):
        if text_data == "close":
            await self.close(code=4001, reason="asked to")
        elif text_data == "bye":
            await self.send(text_data="bye!", close=True)
        elif text_data is not None:
            await self.send(text_data=text_data.upper())
        else:
            await self.send(bytes_data=bytes_data[::-1])

    async def everyone_news(self, event):
        await self.send(text_data="news:" + event["text"])


class SyncEcho(WebsocketConsumer):
    groups = ["everyone"]

    def receive(self, text_data=None, bytes_data=None):
        if text_data == "close":
            self.close(code=4002)
        elif text_data is not None:
            self.send(text_data=text_data.upper())
        else:
            self.send(bytes_data=bytes_data[::-1])

    def everyone_news(self, event):
        self.send(text_data="news:" + event["text"])


@pytest.mark.parametrize("consumer", [AsyncEcho, SyncEcho])
async def test_text_and_binary_frames_round_trip(consumer):
    comm = WebsocketCommunicator(consumer.as_asgi(), "/ws/")
    assert await comm.connect() == (True, None)
    await comm.send_to(text_data="hello")
    assert await comm.receive_from() == "HELLO"
    await comm.send_to(bytes_data=b"abc")
    assert await comm.receive_from() == b"cba"
    await comm.disconnect()


@pytest.mark.parametrize("consumer", [AsyncEcho, SyncEcho])
async def test_groups_attribute_joins_on_connect_and_leaves_on_disconnect(consumer):
    comm = WebsocketCommunicator(consumer.as_asgi(), "/ws/")
    await comm.connect()
    layer = get_channel_layer()
    assert await layer.group_count("everyone") == 1
    await layer.group_send("everyone", {"type": "everyone.news", "text": "hi"})
    assert await comm.receive_from() == "news:hi"
    await comm.disconnect()
    assert await layer.group_count("everyone") == 0


async def test_subprotocol_and_headers_are_sent_on_accept():
    comm = WebsocketCommunicator(AsyncEcho.as_asgi(), "/ws/", subprotocols=["v1", "v2"])
    assert await comm.connect() == (True, "v2")
    assert comm.response_headers == [(b"x-hello", b"1")]
    await comm.disconnect()


@pytest.mark.parametrize("consumer, code", [(AsyncEcho, 4001), (SyncEcho, 4002)])
async def test_server_close_sends_code(consumer, code):
    comm = WebsocketCommunicator(consumer.as_asgi(), "/ws/")
    await comm.connect()
    await comm.send_to(text_data="close")
    out = await comm.receive_output()
    assert out["type"] == "websocket.close" and out["code"] == code
    await comm.disconnect()


async def test_close_carries_a_reason_and_send_can_close_after():
    comm = WebsocketCommunicator(AsyncEcho.as_asgi(), "/ws/")
    await comm.connect()
    await comm.send_to(text_data="close")
    assert await comm.receive_output() == {"type": "websocket.close", "code": 4001, "reason": "asked to"}
    await comm.disconnect()
    comm = WebsocketCommunicator(AsyncEcho.as_asgi(), "/ws/")
    await comm.connect()
    await comm.send_to(text_data="bye")
    assert await comm.receive_from() == "bye!"
    assert await comm.receive_output() == {"type": "websocket.close"}
    await comm.disconnect()


class Denier(AsyncWebsocketConsumer):
    async def connect(self):
        raise DenyConnection()


class Acceptor(WebsocketConsumer):
    def connect(self):
        raise AcceptConnection()


async def test_deny_connection_refuses_before_accept():
    comm = WebsocketCommunicator(Denier.as_asgi(), "/ws/")
    assert await comm.connect() == (False, 1000)


async def test_accept_connection_exception_accepts():
    comm = WebsocketCommunicator(Acceptor.as_asgi(), "/ws/")
    assert await comm.connect() == (True, None)
    await comm.disconnect()


async def test_send_without_data_is_a_value_error():
    class Empty(AsyncWebsocketConsumer):
        async def receive(self, text_data=None, bytes_data=None):
            await self.send()

    comm = WebsocketCommunicator(Empty.as_asgi(), "/ws/")
    await comm.connect()
    await comm.send_to(text_data="x")
    with pytest.raises(ValueError, match="text_data or bytes_data"):
        await comm.receive_output()


async def test_groups_without_a_channel_layer_raise_invalid_channel_layer_error(settings):
    settings.CHANNEL_LAYERS = {}
    comm = WebsocketCommunicator(AsyncEcho.as_asgi(), "/ws/")
    await comm.send_input({"type": "websocket.connect"})
    with pytest.raises(InvalidChannelLayerError, match="no usable layer"):
        await comm.receive_output()


async def test_consumer_that_dies_still_leaves_its_groups():
    class Crashes(AsyncWebsocketConsumer):
        groups = ["doomed"]

        async def receive(self, text_data=None, bytes_data=None):
            raise RuntimeError("boom")

    comm = WebsocketCommunicator(Crashes.as_asgi(), "/ws/")
    await comm.connect()
    assert await get_channel_layer().group_count("doomed") == 1
    await comm.send_to(text_data="x")
    with pytest.raises(RuntimeError, match="boom"):
        await comm.receive_output()
    assert await get_channel_layer().group_count("doomed") == 0


class AsyncJson(AsyncJsonWebsocketConsumer):
    async def receive_json(self, content, **kwargs):
        await self.send_json({"got": content})


class SyncJson(JsonWebsocketConsumer):
    def receive_json(self, content, **kwargs):
        self.send_json({"got": content})


@pytest.mark.parametrize("consumer", [AsyncJson, SyncJson])
async def test_json_consumers_decode_and_encode(consumer):
    comm = WebsocketCommunicator(consumer.as_asgi(), "/ws/")
    await comm.connect()
    await comm.send_json_to({"a": [1, 2]})
    assert await comm.receive_json_from() == {"got": {"a": [1, 2]}}
    await comm.disconnect()


@pytest.mark.parametrize("consumer", [AsyncJson, SyncJson])
async def test_non_json_text_frame_closes_with_1007_and_a_reason(consumer, caplog):
    comm = WebsocketCommunicator(consumer.as_asgi(), "/ws/")
    await comm.connect()
    await comm.send_to(text_data="{not json")
    out = await comm.receive_output()
    assert out["type"] == "websocket.close" and out["code"] == 1007
    assert out["reason"].startswith("frame is not valid JSON")
    assert "not valid JSON" in caplog.text
    await comm.disconnect()


@pytest.mark.parametrize("consumer", [AsyncJson, SyncJson])
async def test_binary_frame_to_json_consumer_closes_with_1003(consumer):
    comm = WebsocketCommunicator(consumer.as_asgi(), "/ws/")
    await comm.connect()
    await comm.send_to(bytes_data=b"\x00\x01")
    out = await comm.receive_output()
    assert out["type"] == "websocket.close" and out["code"] == 1003
    assert "binary frame" in out["reason"]
    await comm.disconnect()


async def test_reject_frame_can_be_overridden_to_answer_instead_of_closing():
    class Lenient(AsyncJson):
        async def reject_frame(self, error):
            await self.send_json({"code": 400, "error": error.reason})

    comm = WebsocketCommunicator(Lenient.as_asgi(), "/ws/")
    await comm.connect()
    await comm.send_to(text_data="nope")
    reply = await comm.receive_json_from()
    assert reply["code"] == 400 and "not valid JSON" in reply["error"]
    await comm.send_json_to([1])
    assert await comm.receive_json_from() == {"got": [1]}
    await comm.disconnect()


async def test_url_route_kwargs_reach_the_consumer():
    class Room(AsyncJsonWebsocketConsumer):
        async def connect(self):
            await self.accept()
            await self.send_json(self.scope["url_route"]["kwargs"])

    app = URLRouter([path("ws/<slug:room>/<int:n>/", Room.as_asgi())])
    comm = WebsocketCommunicator(app, "/ws/lobby/3/")
    await comm.connect()
    assert await comm.receive_json_from() == {"room": "lobby", "n": 3}
    await comm.disconnect()


async def test_memory_stays_flat_across_connect_disconnect_cycles_of_real_consumers():
    """Consumers joining a group and leaving again, 5,000 times, leave no channel, group or growth behind."""
    import gc
    import tracemalloc

    layer = get_channel_layer()

    async def cycle():
        inbox = [{"type": "websocket.connect"}, {"type": "websocket.receive", "text": "hi"},
                 {"type": "websocket.disconnect", "code": 1000}]

        async def receive():
            await asyncio.sleep(0)  # let the channel listener start, as a real server would
            return inbox.pop(0)

        async def send(message):
            pass

        await AsyncEcho.as_asgi()({"type": "websocket", "path": "/", "subprotocols": []}, receive, send)

    for _ in range(1000):  # warm up caches and free lists before measuring
        await cycle()
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for _ in range(5_000):
        await cycle()
    gc.collect()
    growth = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert layer._stats() == (0, 0)
    assert growth < 100_000, f"memory grew by {growth} bytes over 5,000 connections"

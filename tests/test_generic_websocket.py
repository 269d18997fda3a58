"""WebSocket consumers, sync and async, plain and JSON, driven through the communicator."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from django.urls import path

from hubbub import refusals
from hubbub.exceptions import AcceptConnection, DenyConnection, InvalidChannelLayerError, InvalidFrame
from hubbub.generic.websocket import (
    TEST_COMMUNICATOR_KEY,
    AsyncJsonWebsocketConsumer,
    AsyncWebsocketConsumer,
    JsonWebsocketConsumer,
    WebsocketConsumer,
)
from hubbub.layers import get_channel_layer
from hubbub.ratelog import RateLimitedLog
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
async def test_non_json_text_under_the_communicator_raises_json_decode_error_as_in_channels(consumer):
    """Text that is not JSON lets json.JSONDecodeError out of the application; receive_output re-raises it."""
    comm = WebsocketCommunicator(consumer.as_asgi(), "/ws/")
    await comm.connect()
    await comm.send_to(text_data="{not json")
    with pytest.raises(json.JSONDecodeError):
        await comm.receive_output()


@pytest.mark.parametrize("consumer", [AsyncJson, SyncJson])
@pytest.mark.parametrize("frame", [{"bytes_data": b"\x00\x01"}, {"text_data": ""}])
async def test_frame_without_text_under_the_communicator_raises_channels_value_error(consumer, frame):
    """A binary or empty frame makes receive() raise ValueError("No text section ..."), and wait() re-raises it."""
    comm = WebsocketCommunicator(consumer.as_asgi(), "/ws/")
    await comm.connect()
    await comm.send_to(**frame)
    with pytest.raises(ValueError, match=r"^No text section for incoming WebSocket frame!$"):
        await comm.wait()


@pytest.mark.parametrize("consumer", [AsyncJson, SyncJson])
async def test_deeply_nested_json_under_the_communicator_raises_a_value_error_not_recursion_error(consumer):
    """ "[" * 2000 is refused before json.loads recurses: the application raises a ValueError naming the depth."""
    comm = WebsocketCommunicator(consumer.as_asgi(), "/ws/")
    await comm.connect()
    await comm.send_to(text_data="[" * 2000 + "]" * 2000)
    with pytest.raises(ValueError, match="nested more than 128 deep") as raised:
        await comm.receive_output()
    assert isinstance(raised.value, InvalidFrame) and raised.value.code == 1007


async def test_recursion_error_from_a_custom_decoder_becomes_a_value_error():
    """With the depth bound off, json.loads' own RecursionError is converted: still the ValueError family."""
    comm = WebsocketCommunicator(AsyncJson.as_asgi(max_json_depth=None), "/ws/")
    await comm.connect()
    await comm.send_to(text_data="[" * 5000)
    with pytest.raises(ValueError, match="nested too deep to decode") as raised:
        await comm.receive_output()
    assert isinstance(raised.value.__cause__, RecursionError)


async def test_json_frame_over_max_json_bytes_is_refused_with_1009_reason():
    """A frame over the consumer's max_json_bytes is never decoded: InvalidFrame with code 1009."""
    comm = WebsocketCommunicator(AsyncJson.as_asgi(max_json_bytes=100), "/ws/")
    await comm.connect()
    await comm.send_json_to(["x" * 50])
    assert await comm.receive_json_from() == {"got": ["x" * 50]}
    await comm.send_json_to(["é" * 60])  # 60 characters, 120 bytes
    with pytest.raises(ValueError, match="frame over 100 bytes") as raised:
        await comm.receive_output()
    assert raised.value.code == 1009


@pytest.mark.parametrize("consumer", [AsyncJson, SyncJson])
@pytest.mark.parametrize(
    "frame, code, reason",
    [
        ({"text_data": "{not json"}, 1007, "frame is not valid JSON"),
        ({"bytes_data": b"\x01"}, 1003, "binary frame received"),
        ({"text_data": "[" * 300 + "]" * 300}, 1007, "JSON nested more than 128 deep"),
    ],
)
async def test_outside_the_communicator_a_bad_frame_closes_with_a_code_and_logs_one_line(
    consumer, frame, code, reason, caplog, monkeypatch
):
    """Without the communicator's scope flag (a real server), the client gets the close code and the log one line."""
    comm = WebsocketCommunicator(consumer.as_asgi(), "/ws/")
    del comm.scope[TEST_COMMUNICATOR_KEY]
    monkeypatch.setattr(refusals, "_lines", RateLimitedLog(refusals.logger))  # forget earlier tests' lines
    await comm.connect()
    with caplog.at_level(logging.WARNING, logger="hubbub.consumer"):
        await comm.send_to(**frame)
        out = await comm.receive_output()
    assert out["type"] == "websocket.close" and out["code"] == code
    assert out["reason"].startswith(reason)
    lines = [r for r in caplog.records if r.name == "hubbub.consumer"]
    assert len(lines) == 1 and lines[0].exc_info is None
    assert f"code {code} ({reason}" in lines[0].getMessage()
    assert "path /ws/, client 127.0.0.1:12345" in lines[0].getMessage()
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
        inbox = [
            {"type": "websocket.connect"},
            {"type": "websocket.receive", "text": "hi"},
            {"type": "websocket.disconnect", "code": 1000},
        ]

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
    assert layer.held() == (0, 0)
    assert growth < 100_000, f"memory grew by {growth} bytes over 5,000 connections"

"""The test communicators themselves: fast failures, clear errors, the receive helpers."""

from __future__ import annotations

import asyncio
import time

import pytest

from hubbub.generic.websocket import AsyncWebsocketConsumer
from hubbub.testing import ApplicationCommunicator, HttpCommunicator, WebsocketCommunicator


async def crashing_app(scope, receive, send):
    await receive()
    raise KeyError("the app's own error")


async def test_app_exception_is_raised_at_once_not_after_the_timeout():
    comm = ApplicationCommunicator(crashing_app, {"type": "test"})
    await comm.send_input({"type": "go"})
    start = time.monotonic()
    with pytest.raises(KeyError, match="the app's own error"):
        await comm.receive_output(timeout=5)
    assert time.monotonic() - start < 1


async def test_timeout_when_the_app_sends_nothing():
    async def silent(scope, receive, send):
        await asyncio.sleep(10)

    comm = ApplicationCommunicator(silent, {"type": "test"})
    with pytest.raises(asyncio.TimeoutError, match="no message"):
        await comm.receive_output(timeout=0.05)


async def test_app_that_ends_without_sending_is_reported():
    async def quiet(scope, receive, send):
        return None

    comm = ApplicationCommunicator(quiet, {"type": "test"})
    with pytest.raises(asyncio.TimeoutError, match="finished without sending"):
        await comm.receive_output(timeout=1)


class Refuser(AsyncWebsocketConsumer):
    async def connect(self):
        await self.close(code=4403)


class Quiet(AsyncWebsocketConsumer):
    async def receive(self, text_data=None, bytes_data=None):
        pass


async def test_connect_reports_a_refusal_with_its_close_code():
    assert await WebsocketCommunicator(Refuser.as_asgi(), "/").connect() == (False, 4403)


async def test_receive_nothing_is_true_while_the_app_is_quiet():
    comm = WebsocketCommunicator(Quiet.as_asgi(), "/ws/?x=1")
    assert comm.scope["query_string"] == b"x=1" and comm.scope["path"] == "/ws/"
    await comm.connect()
    await comm.send_to(text_data="anything")
    assert await comm.receive_nothing(0.05) is True
    await comm.disconnect()


async def test_send_to_needs_exactly_one_kind_of_data():
    comm = WebsocketCommunicator(Quiet.as_asgi(), "/")
    with pytest.raises(ValueError, match="exactly one"):
        await comm.send_to()
    with pytest.raises(ValueError, match="exactly one"):
        await comm.send_to(text_data="a", bytes_data=b"b")
    with pytest.raises(TypeError, match="text_data must be a str"):
        await comm.send_to(text_data=b"bytes")


def test_path_must_be_a_string():
    with pytest.raises(TypeError, match="Expected str"):
        WebsocketCommunicator(Quiet.as_asgi(), b"/")


async def test_receive_from_complains_about_a_close_instead_of_data_in_channels_words():
    """Parity 18: the AssertionError text is exactly Channels'."""
    comm = WebsocketCommunicator(Refuser.as_asgi(), "/")
    await comm.send_input({"type": "websocket.connect"})
    with pytest.raises(AssertionError) as raised:
        await comm.receive_from()
    assert str(raised.value) == "Expected type 'websocket.send', but was 'websocket.close'"


async def test_http_communicator_rejects_a_non_bytes_body():
    with pytest.raises(TypeError, match="body must be bytes"):
        HttpCommunicator(crashing_app, "GET", "/", body="text")

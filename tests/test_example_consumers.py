"""The demo site's database-free consumers and helpers, in-process (the rest is in tests/e2e)."""

from __future__ import annotations

import json

import pytest
from django.urls import re_path

from api.consumers import RequestResponseConsumer
from chat.consumers import ChatConsumer, EchoConsumer
from demo.frames import MAX_MESSAGE_BYTES, BadFrame, read_json, text_field
from demo.names import MAX_NAME_LENGTH, SESSION_NAME_KEY, clean_name, generate_name, visitor_name
from echo.consumers import StampedEchoConsumer
from hubbub.routing import URLRouter
from hubbub.testing import WebsocketCommunicator


@pytest.mark.parametrize(
    "raw, clean",
    [
        ("lobby", "lobby"),
        ("  my room ", "my-room"),
        ("a.b/c", "abc"),
        ("café", "caf"),
        ("!!", ""),
        ("x" * 90, "x" * 40),
    ],
)
def test_clean_name(raw: str, clean: str) -> None:
    assert clean_name(raw) == clean
    assert len(clean_name(raw)) <= MAX_NAME_LENGTH


def test_generated_names_are_clean() -> None:
    name = generate_name()
    assert clean_name(name) == name


def test_visitor_name_prefers_the_logged_in_user() -> None:
    class User:
        is_authenticated = True

        def get_username(self) -> str:
            return "alice"

    assert visitor_name(User(), {SESSION_NAME_KEY: "swift-otter-10"}) == "alice"
    assert visitor_name(None, {SESSION_NAME_KEY: "swift-otter-10"}) == "swift-otter-10"
    assert visitor_name(None, {}) is None


@pytest.mark.parametrize(
    "text, error",
    [
        (None, "binary frames are not used here; send text"),
        (" \n", "empty message"),
        ("{", "not JSON"),
        ("1" * (MAX_MESSAGE_BYTES + 1), f"message over {MAX_MESSAGE_BYTES} bytes"),
    ],
)
def test_read_json_refuses(text: str, error: str) -> None:
    with pytest.raises(BadFrame, match=error):
        read_json(text, b"" if text is None else None)


def test_size_limit_counts_bytes_not_characters() -> None:
    with pytest.raises(BadFrame):
        read_json(json.dumps("é" * (MAX_MESSAGE_BYTES // 2)), None)
    assert read_json(json.dumps("é" * 100), None) == "é" * 100


def test_text_field() -> None:
    assert text_field({"message": "  hi "}, "message", 10) == "hi"
    for content in [{"message": 3}, ["message"], {"message": ""}, {"message": "long text"}]:
        with pytest.raises(BadFrame):
            text_field(content, "message", 5)


@pytest.mark.django_db(transaction=True)  # a sync consumer checks the DB connection around each handler
async def test_sync_echo() -> None:
    communicator = WebsocketCommunicator(EchoConsumer.as_asgi(), "/ws/echo/")
    assert (await communicator.connect())[0]
    await communicator.send_to(text_data="hello")
    assert await communicator.receive_from() == "hello"
    await communicator.send_to(bytes_data=b"\x00")
    assert await communicator.receive_from() == "error: binary frames are not used here; send text"
    await communicator.disconnect()


async def test_stamped_echo_closes_on_close() -> None:
    communicator = WebsocketCommunicator(StampedEchoConsumer.as_asgi(), "/chat/socket/")
    assert (await communicator.connect())[0]
    await communicator.send_to(text_data="close")
    assert (await communicator.receive_json_from())["echo"] == "close"
    assert await communicator.receive_output() == {
        "type": "websocket.close",
        "code": 1000,
        "reason": "closed on request",
    }
    await communicator.wait()


async def test_request_response() -> None:
    communicator = WebsocketCommunicator(RequestResponseConsumer.as_asgi(), "/ws/")
    assert (await communicator.connect())[0]
    await communicator.send_json_to({"n": 1})
    assert await communicator.receive_json_from() == {"status": "OK", "data": {"n": 1}}
    await communicator.send_to(text_data="")
    assert await communicator.receive_json_from() == {"status": "error", "error": "empty message"}
    await communicator.disconnect()


def chat_app() -> URLRouter:
    return URLRouter([re_path(r"^ws/chat/(?P<room_name>[^/]*)/$", ChatConsumer.as_asgi())])


async def test_chat_room_broadcast_stays_in_the_room() -> None:
    here, there, elsewhere = (
        WebsocketCommunicator(chat_app(), f"/ws/chat/{room}/") for room in ("here", "here", "elsewhere")
    )
    for communicator in (here, there, elsewhere):
        assert (await communicator.connect())[0]
    me = (await here.receive_json_from())["you"]
    await there.receive_json_from(), await elsewhere.receive_json_from()
    await here.send_json_to({"message": "hi"})
    assert await there.receive_json_from() == {"user": me, "message": "hi"}
    assert await here.receive_json_from() == {"user": me, "message": "hi"}
    assert await elsewhere.receive_nothing()
    for communicator in (here, there, elsewhere):
        await communicator.disconnect()


async def test_chat_refuses_a_room_that_is_not_a_group_name() -> None:
    communicator = WebsocketCommunicator(chat_app(), "/ws/chat/no.dots/")
    assert (await communicator.connect())[0]
    assert "is not a room name" in (await communicator.receive_json_from())["error"]
    assert (await communicator.receive_output())["code"] == 4400
    await communicator.disconnect()

"""Base consumers: dispatch, as_asgi, the channel listener, and how consumers end."""

from __future__ import annotations

import asyncio

import pytest

from hubbub.consumer import AsyncConsumer, SyncConsumer, get_handler_name
from hubbub.exceptions import StopConsumer
from hubbub.layers import get_channel_layer
from hubbub.testing import ApplicationCommunicator
from tests.waiting import eventually


def test_handler_name_turns_dots_into_underscores():
    assert get_handler_name({"type": "chat.message"}) == "chat_message"
    assert get_handler_name({"type": "websocket.receive"}) == "websocket_receive"


@pytest.mark.parametrize(
    "message, error",
    [
        ({}, "no 'type'"),
        ({"type": "_private.thing"}, "leading underscore"),
        ({"type": ".leading.dot"}, "leading underscore"),
        ({"type": 3}, "must be a string"),
    ],
)
def test_bad_message_types_raise_value_error_naming_them(message, error):
    with pytest.raises(ValueError, match=error):
        get_handler_name(message)


class Recorder(AsyncConsumer):
    async def test_ping(self, message):
        await self.send({"type": "test.pong", "n": message["n"]})

    async def test_stop(self, message):
        raise StopConsumer()

    async def test_fail(self, message):
        raise RuntimeError("handler broke")

    async def layer_note(self, message):
        await self.send({"type": "test.noted", "text": message["text"], "channel": self.channel_name})


async def test_async_consumer_dispatches_by_type():
    comm = ApplicationCommunicator(Recorder.as_asgi(), {"type": "test"})
    await comm.send_input({"type": "test.ping", "n": 1})
    assert await comm.receive_output() == {"type": "test.pong", "n": 1}
    await comm.send_input({"type": "test.stop"})
    await comm.wait()


async def test_unknown_message_type_raises_value_error_naming_it():
    comm = ApplicationCommunicator(Recorder.as_asgi(), {"type": "test"})
    await comm.send_input({"type": "test.unknown"})
    with pytest.raises(ValueError, match="No handler for message type 'test.unknown' on Recorder"):
        await comm.receive_output()


async def test_private_handler_is_never_dispatched():
    comm = ApplicationCommunicator(Recorder.as_asgi(), {"type": "test"})
    await comm.send_input({"type": "_teardown"})
    with pytest.raises(ValueError, match="leading underscore"):
        await comm.receive_output()


async def test_handler_error_is_raised_to_the_server():
    comm = ApplicationCommunicator(Recorder.as_asgi(), {"type": "test"})
    await comm.send_input({"type": "test.fail"})
    with pytest.raises(RuntimeError, match="handler broke"):
        await comm.receive_output()


async def test_channel_layer_messages_reach_handlers_with_a_channel_name():
    comm = ApplicationCommunicator(Recorder.as_asgi(), {"type": "test"})
    await comm.send_input({"type": "test.ping", "n": 0})
    await comm.receive_output()
    layer = get_channel_layer()
    # the consumer's listener is waiting on its channel, the layer's only inbox
    channels = [name for name in layer.channels]
    assert len(channels) == 1
    await layer.send(channels[0], {"type": "layer.note", "text": "hello"})
    out = await comm.receive_output()
    assert out == {"type": "test.noted", "text": "hello", "channel": channels[0]}
    await comm.send_input({"type": "test.stop"})
    await comm.wait()
    assert layer.held() == (0, 0), "the consumer's channel is forgotten when it ends"


async def test_stop_consumer_from_a_layer_message_ends_the_consumer():
    comm = ApplicationCommunicator(Recorder.as_asgi(), {"type": "test"})
    await comm.send_input({"type": "test.ping", "n": 0})
    await comm.receive_output()
    layer = get_channel_layer()
    (channel,) = list(layer.channels)
    await layer.send(channel, {"type": "test.stop"})
    await comm.wait(1)
    assert comm.future.done() and comm.future.exception() is None


async def test_error_in_a_layer_message_handler_ends_the_consumer_with_that_error():
    comm = ApplicationCommunicator(Recorder.as_asgi(), {"type": "test"})
    await comm.send_input({"type": "test.ping", "n": 0})
    await comm.receive_output()
    layer = get_channel_layer()
    (channel,) = list(layer.channels)
    await layer.send(channel, {"type": "test.fail"})
    with pytest.raises(RuntimeError, match="handler broke"):
        await comm.receive_output()


async def test_handlers_run_one_at_a_time():
    log = []

    class Slow(AsyncConsumer):
        async def test_slow(self, message):
            log.append("start")
            await asyncio.sleep(0.05)
            log.append("end")

        async def layer_quick(self, message):
            log.append("quick")

    comm = ApplicationCommunicator(Slow.as_asgi(), {"type": "test"})
    await comm.send_input({"type": "test.slow"})
    await eventually(lambda: log == ["start"], what="the slow handler started")
    layer = get_channel_layer()
    (channel,) = list(layer.channels)
    await layer.send(channel, {"type": "layer.quick"})
    await eventually(lambda: len(log) == 3, what="both handlers ran")
    assert log == ["start", "end", "quick"]
    comm.stop()


async def test_consumer_without_a_layer_has_no_channel(settings):
    settings.CHANNEL_LAYERS = {}
    comm = ApplicationCommunicator(Recorder.as_asgi(), {"type": "test"})
    await comm.send_input({"type": "test.ping", "n": 2})
    assert await comm.receive_output() == {"type": "test.pong", "n": 2}
    await comm.send_input({"type": "test.stop"})
    await comm.wait()


def test_as_asgi_sets_known_attributes_and_refuses_unknown_ones():
    class WithOption(AsyncConsumer):
        greeting = "hi"

    app = WithOption.as_asgi(greeting="hello")
    assert app.consumer_class is WithOption
    assert app.consumer_initkwargs == {"greeting": "hello"}
    assert app.__name__ == "WithOption"
    with pytest.raises(TypeError, match="unexpected keyword argument 'nope'"):
        WithOption.as_asgi(nope=1)


async def test_as_asgi_makes_one_instance_per_connection():
    instances = []

    class Counter(AsyncConsumer):
        async def test_who(self, message):
            instances.append(id(self))
            raise StopConsumer()

    app = Counter.as_asgi()
    for _ in range(2):
        comm = ApplicationCommunicator(app, {"type": "test"})
        await comm.send_input({"type": "test.who"})
        await comm.wait()
    assert len(set(instances)) == 2


class SyncRecorder(SyncConsumer):
    def test_ping(self, message):
        import threading

        self.send({"type": "test.pong", "in_thread": threading.current_thread() is not threading.main_thread()})

    def test_stop(self, message):
        raise StopConsumer()


async def test_sync_consumer_runs_handlers_in_a_thread_and_sends_synchronously():
    comm = ApplicationCommunicator(SyncRecorder.as_asgi(), {"type": "test"})
    await comm.send_input({"type": "test.ping"})
    assert await comm.receive_output() == {"type": "test.pong", "in_thread": True}
    await comm.send_input({"type": "test.stop"})
    await comm.wait()


async def test_sync_consumer_unknown_type_raises_value_error():
    comm = ApplicationCommunicator(SyncRecorder.as_asgi(), {"type": "test"})
    await comm.send_input({"type": "test.nothing"})
    with pytest.raises(ValueError, match="No handler for message type 'test.nothing'"):
        await comm.receive_output()


async def test_as_asgi_passes_keywords_the_consumers_own_init_takes():
    """A consumer taking options in __init__ (strawberry's GraphQLWSConsumer(schema=...)) gets them per connection;
    class attributes can still be set alongside, and a keyword neither takes fails when the route is built."""
    from hubbub.generic.websocket import AsyncJsonWebsocketConsumer
    from hubbub.testing import WebsocketCommunicator

    class Base(AsyncJsonWebsocketConsumer):
        def __init__(self, *args, **kwargs):  # a library base forwarding what it does not know
            self.made_by_base = True
            super().__init__(*args, **kwargs)

    class GraphQL(Base):
        greeting = "hi"

        def __init__(self, schema, keep_alive=False, *, debug=False):
            self.schema, self.keep_alive, self.debug = schema, keep_alive, debug
            super().__init__()

        async def connect(self):
            await self.accept()
            await self.send_json([self.schema, self.keep_alive, self.debug, self.made_by_base])

    communicator = WebsocketCommunicator(GraphQL.as_asgi(schema="the schema", debug=True), "/graphql/")
    assert (await communicator.connect())[0]
    assert await communicator.receive_json_from() == ["the schema", False, True, True]
    await communicator.disconnect()

    class Options(Base):
        greeting = "hi"

        def __init__(self, colour="red", **kwargs):
            self.colour = colour
            super().__init__(**kwargs)

        async def connect(self):
            await self.accept()
            await self.send_json([self.colour, self.greeting])

    communicator = WebsocketCommunicator(Options.as_asgi(colour="blue", greeting="hello"), "/")
    assert (await communicator.connect())[0]
    assert await communicator.receive_json_from() == ["blue", "hello"]
    await communicator.disconnect()

    with pytest.raises(TypeError, match=r"GraphQL\.as_asgi\(\) got an unexpected keyword argument 'greting'"):
        GraphQL.as_asgi(schema="s", greting="typo")
    with pytest.raises(TypeError, match=r"Options\.as_asgi\(\) got an unexpected keyword argument 'size'"):
        Options.as_asgi(size=3)

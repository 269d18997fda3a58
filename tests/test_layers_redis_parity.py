"""channels_redis parity (compat/parity.md items 11-17), against the shared Redis under a unique prefix.

Each test states what code written for channels_redis observes and checks it holds on
hubbub's Redis layers; where hubbub does more (an error that explains), that is checked too.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import os
import re
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import msgpack
import pytest
from asgiref.sync import async_to_sync
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.test import override_settings

from hubbub.exceptions import ChannelFull
from hubbub.layers import get_channel_layer
from hubbub.layers.redis import RedisChannelLayer, RedisPubSubChannelLayer
from hubbub.layers.redis.serializers import (
    BaseMessageSerializer,
    JSONSerializer,
    MsgPackSerializer,
    SerializerDoesNotExist,
    SerializersRegistry,
    registry,
)

from .servers import ROOT
from .test_layers_redis import layer_factory
from .waiting import ManualClock, eventually

pytestmark = pytest.mark.timeout(90)

WAIT = 5.0


@pytest.fixture
async def make_layer(redis_url: str, redis_prefix: str) -> Any:
    async with layer_factory(RedisChannelLayer, redis_url, redis_prefix) as make:
        yield make


@pytest.fixture
async def make_pubsub(redis_url: str, redis_prefix: str) -> Any:
    async with layer_factory(RedisPubSubChannelLayer, redis_url, redis_prefix) as make:
        yield make


@pytest.fixture
def sync_layers(redis_url: str, redis_prefix: str) -> Iterator[Callable[..., RedisChannelLayer]]:
    """List layers for sync code (each call of ``async_to_sync`` runs its own event loop); keys deleted after."""
    made: list[RedisChannelLayer] = []

    def make(**config: Any) -> RedisChannelLayer:
        layer = RedisChannelLayer(hosts=[redis_url], prefix=redis_prefix, **config)
        made.append(layer)
        return layer

    yield make
    if made:
        async_to_sync(made[0].flush)()


def sync_receive(layer: RedisChannelLayer, channel: str, timeout: float = WAIT) -> dict:
    """``layer.receive(channel)`` from sync code, in a new event loop, failing instead of hanging."""

    async def receive() -> dict:
        return await asyncio.wait_for(layer.receive(channel), timeout)

    return async_to_sync(receive)()


def nothing_arrives_sync(layer: RedisChannelLayer, channel: str, within: float = 0.5) -> bool:
    try:
        sync_receive(layer, channel, within)
    except asyncio.TimeoutError:
        return True
    return False


def run_script(code: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter with this worktree's hubbub first on the path."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


LEFTOVER_TASK_ERRORS = (
    "Task was destroyed but it is pending",
    "Exception ignored",
    "no running event loop",
    "Traceback",
)


# -- 11. process-local names belong to the layer instance, not the event loop ------------------------


def test_name_from_new_channel_in_one_async_to_sync_call_is_sent_to_and_received_in_others(sync_layers):
    """Each async_to_sync call runs its own loop: a name made in one is usable, in order, from the next ones."""
    layer = sync_layers()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.send)(channel, {"type": "m", "n": 1})
    async_to_sync(layer.send)(channel, {"type": "m", "n": 2})
    assert sync_receive(layer, channel) == {"type": "m", "n": 1}
    assert sync_receive(layer, channel) == {"type": "m", "n": 2}
    assert nothing_arrives_sync(layer, channel)


def test_messages_from_another_process_wait_in_redis_until_a_loop_receives_them_in_order(sync_layers):
    """Sent while no loop of the owner is receiving: kept in Redis, capacity applies, next receive gets them."""
    owner, sender = sync_layers(), sync_layers(capacity=2)
    channel = async_to_sync(owner.new_channel)()
    async_to_sync(sender.send)(channel, {"type": "m", "n": 1})
    async_to_sync(sender.send)(channel, {"type": "m", "n": 2})
    with pytest.raises(ChannelFull):
        async_to_sync(sender.send)(channel, {"type": "m", "n": 3})
    assert [sync_receive(owner, channel)["n"] for _ in range(2)] == [1, 2]
    async_to_sync(sender.send)(channel, {"type": "m", "n": 4})  # received ones no longer count
    assert sync_receive(owner, channel)["n"] == 4


def test_same_instance_sends_between_loops_respect_capacity(sync_layers):
    layer = sync_layers(capacity=2)
    channel = async_to_sync(layer.new_channel)()
    for n in range(2):
        async_to_sync(layer.send)(channel, {"type": "m", "n": n})
    with pytest.raises(ChannelFull):
        async_to_sync(layer.send)(channel, {"type": "m", "n": 2})
    assert [sync_receive(layer, channel)["n"] for _ in range(2)] == [0, 1]


def test_messages_waiting_for_a_loop_expire_unread(sync_layers):
    """A message nobody received within ``expiry`` is gone, whichever loop asks later."""
    clock = ManualClock()
    owner, sender = sync_layers(expiry=1, clock=clock), sync_layers(expiry=1, clock=clock)
    channel = async_to_sync(owner.new_channel)()
    async_to_sync(sender.send)(channel, {"type": "old"})
    clock.advance(1.5)  # the message's lifetime passing is the condition here
    async_to_sync(sender.send)(channel, {"type": "new"})
    assert sync_receive(owner, channel) == {"type": "new"}


async def test_name_still_receivable_from_another_loop_after_close_pools_in_the_creating_loop(make_layer):
    layer, sender = make_layer(), make_layer()
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "local"})
    await sender.send(channel, {"type": "remote"})
    await layer.close_pools()

    def other_loop() -> list[dict]:
        async def receive_two() -> list[dict]:
            return [await asyncio.wait_for(layer.receive(channel), WAIT) for _ in range(2)]

        return asyncio.run(receive_two())

    received = await asyncio.get_running_loop().run_in_executor(None, other_loop)
    assert sorted(m["type"] for m in received) == ["local", "remote"]


async def test_receiver_waiting_in_another_threads_loop_gets_messages_sent_from_this_loop(make_layer):
    """A server loop sends to a channel an ``async_to_sync`` receiver (another thread's loop) is waiting on."""
    layer, other = make_layer(), make_layer()
    channel = await layer.new_channel()
    received: list[dict] = []

    def receive_in_thread() -> None:
        async def receive_three() -> None:
            for _ in range(3):
                received.append(await asyncio.wait_for(layer.receive(channel), WAIT))

        asyncio.run(receive_three())

    thread = threading.Thread(target=receive_in_thread)
    thread.start()
    await eventually(lambda: layer.receivers_waiting(channel), timeout=WAIT, what="the receiver waits")
    assert layer.receivers_waiting(channel) == 1  # the receiver waits in the other loop
    await layer.send(channel, {"type": "m", "n": 1})  # handed over in memory
    await other.send(channel, {"type": "m", "n": 2})  # through Redis, read by the other loop's reader
    await layer.group_add("room", channel)
    await other.group_send("room", {"type": "m", "n": 3})
    await asyncio.get_running_loop().run_in_executor(None, thread.join, WAIT * 3)
    # Both loops read the instance's inbox here, so frames they popped separately may be filed in either order.
    assert sorted(m["n"] for m in received) == [1, 2, 3]


def test_sync_script_using_a_name_across_async_to_sync_calls_exits(redis_url, redis_prefix):
    """The whole user story in a fresh interpreter: it prints the messages and exits, nothing pending."""
    result = run_script(
        f"""
        from asgiref.sync import async_to_sync
        from hubbub.layers.redis import RedisChannelLayer
        layer = RedisChannelLayer(hosts=[{redis_url!r}], prefix={redis_prefix!r})
        name = async_to_sync(layer.new_channel)()
        async_to_sync(layer.send)(name, {{"type": "hello", "n": 1}})
        print(async_to_sync(layer.receive)(name))
        async_to_sync(layer.flush)()
    """,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "{'type': 'hello', 'n': 1}"
    assert not any(error in result.stderr for error in LEFTOVER_TASK_ERRORS), result.stderr


# -- 12. wrong client prefix ------------------------------------------------------------------------


async def test_receive_on_another_instances_process_local_name_fails_at_once(make_layer):
    mine, theirs = make_layer(), make_layer()
    channel = await theirs.new_channel()
    with pytest.raises(AssertionError, match="^Wrong client prefix"):
        await asyncio.wait_for(mine.receive(channel), 1)
    with pytest.raises(AssertionError, match="^Wrong client prefix"):
        await asyncio.wait_for(mine.receive("specific.notmine!abc"), 1)


# -- 13. the layers' serialize() / deserialize() ----------------------------------------------------


async def test_list_layer_serialize_is_msgpack_after_a_random_prefix_of_random_prefix_length(make_layer):
    message = {"type": "chat.message", "text": "hi"}
    layer = make_layer()
    data = layer.serialize(message)
    assert data[12:] == msgpack.packb(message)
    assert layer.serialize(message)[:12] != data[:12]  # random bytes, new each time
    assert layer.deserialize(data) == message
    plain = make_layer(random_prefix_length=0)
    assert plain.serialize(message) == msgpack.packb(message)


async def test_pubsub_layer_serialize_has_no_prefix(make_pubsub):
    message = {"type": "chat.message", "text": "hi"}
    layer = make_pubsub()
    assert layer.serialize(message) == msgpack.packb(message)
    assert layer.deserialize(msgpack.packb(message)) == message


class DatetimeMixin:
    """The common user pattern: msgpack with a ``default=`` for datetimes, read back with an ext hook."""

    def serialize(self, message: dict) -> bytes:
        def default(value: Any) -> Any:
            if isinstance(value, datetime.datetime):
                return msgpack.ExtType(1, value.isoformat().encode())
            raise TypeError(f"cannot pack {type(value).__name__}")

        return msgpack.packb(message, default=default)

    def deserialize(self, data: bytes) -> dict:
        def ext_hook(code: int, raw: bytes) -> Any:
            return datetime.datetime.fromisoformat(raw.decode()) if code == 1 else msgpack.ExtType(code, raw)

        return msgpack.unpackb(data, ext_hook=ext_hook)


class DatetimeRedisLayer(DatetimeMixin, RedisChannelLayer):
    pass


class DatetimePubSubLayer(DatetimeMixin, RedisPubSubChannelLayer):
    pass


WHEN = datetime.datetime(2026, 11, 29, 3, 0, tzinfo=datetime.timezone.utc)


@pytest.mark.parametrize("layer_class", [DatetimeRedisLayer, DatetimePubSubLayer])
async def test_overridden_serialize_is_used_for_every_message_written_and_read(layer_class, redis_url, redis_prefix):
    """Direct sends (same and other process), group messages and worker channels all use the override."""
    async with layer_factory(layer_class, redis_url, redis_prefix) as make:
        owner, sender = make(), make()
        channel = await owner.new_channel()
        await owner.group_add("room", channel)
        await owner.send(channel, {"type": "a", "at": WHEN})
        await sender.send(channel, {"type": "b", "at": WHEN})
        await sender.group_send("room", {"type": "c", "at": WHEN})
        got = [await asyncio.wait_for(owner.receive(channel), WAIT) for _ in range(3)]
        assert sorted(m["type"] for m in got) == ["a", "b", "c"]
        assert all(m["at"] == WHEN for m in got)
        if layer_class is DatetimeRedisLayer:  # queued in Redis until received (pub/sub keeps nothing)
            await sender.send("jobs", {"type": "d", "at": WHEN})
            assert await asyncio.wait_for(owner.receive("jobs"), WAIT) == {"type": "d", "at": WHEN}


async def test_unencodable_message_fails_at_the_sender_naming_the_type(make_layer):
    import decimal

    layer = make_layer()
    channel = await layer.new_channel()
    with pytest.raises(TypeError, match="Decimal"):
        await layer.send(channel, {"type": "price", "amount": decimal.Decimal("1.5")})
    with pytest.raises(TypeError, match="set"):
        await layer.group_send("room", {"type": "tags", "tags": {"a"}})


# -- 14. hubbub.layers.redis.serializers (channels_redis.serializers) -----------------------------------


def test_serializer_does_not_exist_is_a_key_error_naming_the_registered_formats():
    assert issubclass(SerializerDoesNotExist, KeyError)
    with pytest.raises(SerializerDoesNotExist) as caught:
        registry.get_serializer("yaml-nope")
    assert caught.value.args[0] == "yaml-nope"
    assert "json" in str(caught.value) and "msgpack" in str(caught.value)


def test_base_message_serializer_is_abstract_and_keeps_its_settings():
    with pytest.raises(TypeError):
        BaseMessageSerializer()  # type: ignore[abstract]
    serializer = MsgPackSerializer(symmetric_encryption_keys=["k1", "k2"], random_prefix_length=4, expiry=30)
    assert (serializer.random_prefix_length, serializer.expiry) == (4, 30)
    assert isinstance(serializer.crypter, MultiFernet)
    assert MsgPackSerializer().crypter is None
    with pytest.raises(ValueError):
        MsgPackSerializer(symmetric_encryption_keys="one-key")


def test_make_fernet_uses_the_urlsafe_base64_sha256_of_the_key():
    import base64
    import hashlib

    token = MsgPackSerializer().make_fernet("secret").encrypt(b"x")
    assert Fernet(base64.urlsafe_b64encode(hashlib.sha256(b"secret").digest())).decrypt(token) == b"x"


def test_serialize_encodes_then_encrypts_then_prefixes():
    message = {"type": "m", "text": "hi"}
    serializer = MsgPackSerializer(symmetric_encryption_keys=["new", "old"], random_prefix_length=5)
    data = serializer.serialize(message)
    assert serializer.make_fernet("new").decrypt(data[5:]) == msgpack.packb(message)
    assert serializer.deserialize(data) == message
    rotated = MsgPackSerializer(symmetric_encryption_keys=["newer", "new"], random_prefix_length=5)
    assert rotated.deserialize(data) == message  # decrypted with any of the keys


def test_deserialize_refuses_tokens_older_than_expiry_plus_ten_seconds():
    message = msgpack.packb({"type": "m"})
    old = MsgPackSerializer().make_fernet("k").encrypt_at_time(message, int(time.time()) - 60)
    with pytest.raises(InvalidToken):
        MsgPackSerializer(symmetric_encryption_keys=["k"], expiry=40).deserialize(old)
    assert MsgPackSerializer(symmetric_encryption_keys=["k"], expiry=55).deserialize(old) == {"type": "m"}
    assert MsgPackSerializer(symmetric_encryption_keys=["k"]).deserialize(old) == {"type": "m"}


def test_json_and_msgpack_serializers_use_the_plain_encodings():
    message = {"type": "m", "n": [1, 2.5, None], "s": "é"}
    assert JSONSerializer().serialize(message) == json.dumps(message).encode("utf-8")
    assert JSONSerializer().deserialize(json.dumps(message).encode()) == message
    assert MsgPackSerializer().serialize(message) == msgpack.packb(message)
    assert MsgPackSerializer().deserialize(msgpack.packb(message)) == message


def test_registry_accepts_serializer_classes_and_duck_typed_ones_only():
    class Duck:
        def __init__(self, **kwargs: Any):
            self.kwargs = kwargs

        def serialize(self, message: Any) -> bytes:
            return b""

        def deserialize(self, data: bytes) -> Any:
            return {}

    own = SerializersRegistry()
    own.register_serializer("duck", Duck)
    own.register_serializer("json", JSONSerializer)
    assert own.get_serializer("duck", expiry=3).kwargs == {"expiry": 3}
    assert isinstance(own.get_serializer("json", random_prefix_length=2), JSONSerializer)
    for bad in (object, Duck(), "json", dict):
        with pytest.raises(AssertionError):
            own.register_serializer("bad", bad)
    with pytest.raises(SerializerDoesNotExist):
        own.get_serializer("msgpack")
    assert isinstance(registry.get_serializer("json"), JSONSerializer)
    assert isinstance(registry.get_serializer("msgpack"), MsgPackSerializer)


class ShoutingJSON(BaseMessageSerializer):
    """A user's format: JSON that keeps datetimes as ISO strings."""

    def as_bytes(self, message: Any) -> bytes:
        return json.dumps(message, default=lambda v: v.isoformat()).encode()

    def from_bytes(self, data: bytes) -> Any:
        return json.loads(data)


registry.register_serializer("test-parity-json-iso", ShoutingJSON)


@pytest.mark.parametrize(
    "backend", ["channels_redis.core.RedisChannelLayer", "channels_redis.pubsub.RedisPubSubChannelLayer"]
)
async def test_user_registered_format_can_be_named_in_channel_layers_config(backend, redis_url, redis_prefix):
    config = {
        "hosts": [redis_url],
        "prefix": redis_prefix,
        "serializer_format": "test-parity-json-iso",
        "symmetric_encryption_keys": ["k"],
    }
    with override_settings(CHANNEL_LAYERS={"default": {"BACKEND": backend, "CONFIG": config}}):
        layer = get_channel_layer()
        assert isinstance(layer._serializer, ShoutingJSON)
        channel = await layer.new_channel()
        try:
            await layer.send(channel, {"type": "m", "at": WHEN})
            assert await asyncio.wait_for(layer.receive(channel), WAIT) == {"type": "m", "at": WHEN.isoformat()}
        finally:
            await layer.flush()
            await layer.close_pools()


async def test_docs_custom_serializer_example_carries_datetimes_between_processes(redis_url, redis_prefix):
    """docs/redis.md's serializer example, extracted and run: a registered format named in CONFIG."""
    text = (ROOT / "docs" / "redis.md").read_text()
    block = re.search(r"## Message format: serializers.*?```python\n(.*?)```", text, re.S).group(1)
    namespace: dict = {}
    exec(compile(block, "docs/redis.md (serializers)", "exec"), namespace)
    settings = namespace["CHANNEL_LAYERS"]["default"]
    config = {**settings["CONFIG"], "hosts": [redis_url], "prefix": redis_prefix}
    with override_settings(CHANNEL_LAYERS={"default": {**settings, "CONFIG": config}}):
        sender = get_channel_layer()
    owner = RedisChannelLayer(**config)
    try:
        channel = await owner.new_channel()
        await sender.send(channel, {"type": "m", "at": WHEN})
        assert await asyncio.wait_for(owner.receive(channel), WAIT) == {"type": "m", "at": WHEN}
    finally:
        await owner.flush()
        await owner.close_pools()
        await sender.close_pools()


# -- 15. over-capacity group_send is logged at INFO, rate-limited per group ------------------------------


async def test_full_members_in_group_send_log_one_info_line_per_group_never_a_warning(make_layer, caplog):
    caplog.set_level(logging.DEBUG, "hubbub.layers.redis")
    sender, owner = make_layer(), make_layer(capacity=1)
    channel = await owner.new_channel()
    await owner.group_add("room", channel)
    for n in range(6):
        await sender.group_send("room", {"type": "m", "n": n})
    await sender.group_send("other", {"type": "flush"})  # nobody there; sent after, from the same sender
    deadline = time.monotonic() + WAIT
    while owner.dropped < 5 and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert owner.dropped == 5
    lines = [r for r in caplog.records if "over capacity" in r.getMessage()]
    assert [r.levelno for r in lines] == [logging.INFO]  # five drops, one line
    assert lines[0].getMessage().startswith("1 of 1 channels over capacity in group room")
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_full_worker_channel_member_is_logged_at_info_by_the_sender(make_layer, caplog):
    caplog.set_level(logging.DEBUG, "hubbub.layers.redis")
    layer = make_layer(capacity=1)
    await layer.group_add("jobs-group", "jobs-queue")
    for n in range(3):
        await layer.group_send("jobs-group", {"type": "job", "n": n})
    lines = [r for r in caplog.records if "over capacity" in r.getMessage()]
    assert [r.levelno for r in lines] == [logging.INFO]  # two drops, one line
    assert lines[0].getMessage().startswith("1 of 1 channels over capacity in group jobs-group")
    assert layer.dropped == 2
    assert (await asyncio.wait_for(layer.receive("jobs-queue"), WAIT))["n"] == 0


# -- 16. no stray tasks when a loop or a layer is abandoned ----------------------------------------


USE_BOTH_LAYERS = """
    import asyncio, gc, sys
    from hubbub.layers.redis import RedisChannelLayer, RedisPubSubChannelLayer

    async def use(layer):
        channel = await layer.new_channel()
        await layer.group_add("room", channel)
        await layer.send(channel, {{"type": "m"}})
        await asyncio.wait_for(layer.receive(channel), 5)
        await layer.presence_add("room", channel)
        try:  # starts a worker channel reader, left running
            await asyncio.wait_for(layer.receive("jobs"), 0.2)
        except asyncio.TimeoutError:
            pass

    def make(cls):
        return cls(hosts=[{url!r}], prefix={prefix!r})
"""


def test_closing_a_loop_without_cancelling_its_tasks_leaves_no_pending_layer_tasks(redis_url, redis_prefix):
    result = run_script(
        USE_BOTH_LAYERS.format(url=redis_url, prefix=redis_prefix)
        + """
    layers = [make(RedisChannelLayer), make(RedisPubSubChannelLayer)]
    for layer in layers:
        loop = asyncio.new_event_loop()
        loop.run_until_complete(use(layer))
        loop.close()  # no cancelling of the layer's readers first
        gc.collect()
    loop = asyncio.new_event_loop()
    loop.run_until_complete(layers[0].flush())
    loop.close()
    del layers
    gc.collect()
    print("done")
    """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "done"
    assert not any(error in result.stderr for error in LEFTOVER_TASK_ERRORS), result.stderr


def test_dropping_a_layer_while_its_loop_runs_stops_its_tasks(redis_url, redis_prefix):
    result = run_script(
        USE_BOTH_LAYERS.format(url=redis_url, prefix=redis_prefix)
        + """
    async def main():
        for cls in (RedisChannelLayer, RedisPubSubChannelLayer):
            layer = make(cls)
            await use(layer)
            await layer.flush()
            del layer
            gc.collect()
            deadline = asyncio.get_running_loop().time() + 10
            while len(asyncio.all_tasks()) > 1 and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.01)
            print(cls.__name__, "tasks left:", len(asyncio.all_tasks()) - 1)

    loop = asyncio.new_event_loop()
    loop.run_until_complete(main())
    loop.close()
    gc.collect()
    """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == [
        "RedisChannelLayer tasks left: 0",
        "RedisPubSubChannelLayer tasks left: 0",
    ], result.stdout + result.stderr
    assert not any(error in result.stderr for error in LEFTOVER_TASK_ERRORS), result.stderr


# -- 17. pub/sub on_disconnect / on_reconnect ---------------------------------------------------------


async def test_pubsub_accepts_on_disconnect_and_on_reconnect_in_config(redis_url, redis_prefix):
    config = {
        "hosts": [redis_url],
        "prefix": redis_prefix,
        "on_disconnect": "redis.disconnect",
        "on_reconnect": "redis.reconnect",
    }
    backend = "channels_redis.pubsub.RedisPubSubChannelLayer"
    with override_settings(CHANNEL_LAYERS={"default": {"BACKEND": backend, "CONFIG": config}}):
        layer = get_channel_layer()
        assert isinstance(layer, RedisPubSubChannelLayer)
        assert (layer.on_disconnect, layer.on_reconnect) == ("redis.disconnect", "redis.reconnect")
        channel = await layer.new_channel()
        try:
            await layer.send(channel, {"type": "still.works"})
            assert await asyncio.wait_for(layer.receive(channel), WAIT) == {"type": "still.works"}
        finally:
            await layer.close_pools()


# -- 11 (continued): a loop ending while its reader's pop was served loses nothing ----------------------


async def test_frames_popped_as_a_loop_ends_reach_the_instances_other_loops():
    """Every loop of an instance shares its inbox: a reader cancelled just after Redis served its pop
    (``asyncio.run`` / ``async_to_sync`` cancel every task of the ending loop) hands those frames on."""
    import shutil

    import redis as sync_redis

    from hubbub.layers.redis.protocol import DIRECT, message_frame
    from tests.servers import redis_server

    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    with redis_server() as server:
        layer = RedisChannelLayer(hosts=[server.url], prefix="rescue")
        channel = await layer.new_channel()  # starts this loop's inbox reader
        client = sync_redis.Redis.from_url(server.url)
        try:
            deadline = time.monotonic() + WAIT
            while client.info("clients")["blocked_clients"] < 1 and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            assert client.info("clients")["blocked_clients"] == 1  # the reader waits in BLMPOP
            frame = message_frame(DIRECT, channel, int((time.time() + 60) * 1000), layer.serialize({"type": "late"}))
            # Blocking this loop: Redis serves the pop, and the reader is cancelled before it reads the reply.
            client.rpush(layer.keys.inbox(layer.client_prefix), frame)
            await layer.close_pools()

            def another_loop() -> dict:
                async def receive() -> dict:
                    try:
                        return await asyncio.wait_for(layer.receive(channel), WAIT)
                    finally:
                        await layer.close_pools()

                return asyncio.run(receive())

            received = await asyncio.get_running_loop().run_in_executor(None, another_loop)
            assert received == {"type": "late"}
        finally:
            client.close()


# -- 11 (continued): the instance's inboxes, shared by loops in different threads (no Redis) ------------


def _receive_in_thread(body: Callable[..., Any]) -> threading.Thread:
    thread = threading.Thread(target=lambda: asyncio.run(body()))
    thread.start()
    return thread


def test_item_for_a_receiver_waiting_in_another_threads_loop_is_handed_over_there():
    from hubbub.layers.inbox import Inboxes, Item

    inboxes = Inboxes(lambda channel: 10)
    waiting, got = threading.Event(), []

    async def receiver() -> None:
        taking = asyncio.ensure_future(inboxes.take("c", time.time, lambda ch, it: None))
        await asyncio.sleep(0)  # take() has registered its waiter
        waiting.set()
        got.append(await asyncio.wait_for(taking, WAIT))

    thread = _receive_in_thread(receiver)
    assert waiting.wait(WAIT)

    async def deliver() -> bool:
        return inboxes.deliver("c", Item(1e12, {"type": "x"}, False))

    assert asyncio.run(deliver())
    thread.join(WAIT)
    assert got == [Item(1e12, {"type": "x"}, False)]


def test_item_handed_to_a_receiver_that_left_meanwhile_stays_first_in_line():
    from hubbub.layers.inbox import Inboxes, Item

    inboxes = Inboxes(lambda channel: 10)
    waiting, delivered, got = threading.Event(), threading.Event(), []

    async def receiver() -> None:
        taking = asyncio.ensure_future(inboxes.take("c", time.time, lambda ch, it: None))
        await asyncio.sleep(0)
        waiting.set()
        assert delivered.wait(WAIT)  # blocks this loop: the hand-over waits in its queue
        taking.cancel()  # the receiver goes away before the hand-over runs
        with pytest.raises(asyncio.CancelledError):
            await taking
        got.append(await asyncio.wait_for(inboxes.take("c", time.time, lambda ch, it: None), WAIT))
        got.append(await asyncio.wait_for(inboxes.take("c", time.time, lambda ch, it: None), WAIT))

    thread = _receive_in_thread(receiver)
    assert waiting.wait(WAIT)

    async def deliver() -> None:
        assert inboxes.deliver("c", Item(1e12, {"type": "first"}, False))
        assert inboxes.deliver("c", Item(1e12, {"type": "second"}, False))

    asyncio.run(deliver())
    delivered.set()
    thread.join(WAIT)
    assert [item.message["type"] for item in got] == ["first", "second"]


def test_group_delivery_to_many_members_skips_only_the_full_ones():
    from hubbub.layers.inbox import Inboxes, Item

    inboxes = Inboxes(lambda channel: 1)
    assert inboxes.deliver("full", Item(1e12, {"type": "old"}, False))
    assert inboxes.deliver_many(["full", "a", "b"], Item(1e12, {"type": "new"}, False)) == 1
    assert inboxes.drain("a") == inboxes.drain("b") == [Item(1e12, {"type": "new"}, False)]
    assert inboxes.drain("full") == [Item(1e12, {"type": "old"}, False)]

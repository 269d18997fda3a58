"""The in-memory channel layer, the base layer's rules, and the layer manager."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from django.test import override_settings

from hubbub.exceptions import ChannelFull, InvalidChannelLayerError
from hubbub.layers import BaseChannelLayer, InMemoryChannelLayer, channel_layers, get_channel_layer
from tests.layer_timing import untraced_seconds
from tests.waiting import ManualClock, eventually


@pytest.fixture
def layer() -> InMemoryChannelLayer:
    return InMemoryChannelLayer(capacity=3)


async def test_send_then_receive_returns_the_message(layer):
    await layer.send("work", {"type": "job", "n": 1})
    assert await layer.receive("work") == {"type": "job", "n": 1}


async def test_receive_waits_for_a_later_send(layer):
    receiver = asyncio.ensure_future(layer.receive("work"))
    await asyncio.sleep(0)
    assert not receiver.done()
    await layer.send("work", {"type": "job"})
    assert await asyncio.wait_for(receiver, 1) == {"type": "job"}


async def test_messages_come_out_in_the_order_they_were_sent(layer):
    for n in range(3):
        await layer.send("work", {"type": "job", "n": n})
    assert [(await layer.receive("work"))["n"] for _ in range(3)] == [0, 1, 2]


async def test_a_sent_message_is_not_changed_by_the_sender_reusing_its_dict(layer):
    message = {"type": "job", "n": 1}
    await layer.send("work", message)
    message["n"] = 2
    assert (await layer.receive("work"))["n"] == 1


async def test_send_past_capacity_raises_channel_full_and_keeps_what_was_queued(layer):
    for n in range(3):
        await layer.send("work", {"type": "job", "n": n})
    with pytest.raises(ChannelFull, match="'work' is full"):
        await layer.send("work", {"type": "job", "n": 3})
    assert [(await layer.receive("work"))["n"] for _ in range(3)] == [0, 1, 2]


async def test_channel_capacity_patterns_override_the_default():
    layer = InMemoryChannelLayer(capacity=2, channel_capacity={"big.*": 5})
    assert layer.get_capacity("big.one") == 5
    assert layer.get_capacity("small") == 2
    for _n in range(5):
        await layer.send("big.one", {"type": "x"})
    with pytest.raises(ChannelFull):
        await layer.send("big.one", {"type": "x"})


async def test_expired_messages_are_dropped_and_free_capacity():
    clock = ManualClock()
    layer = InMemoryChannelLayer(expiry=0.05, capacity=1, clock=clock)
    await layer.send("work", {"type": "old"})
    clock.advance(0.08)
    await layer.send("work", {"type": "new"})  # the old one expired, so this fits
    assert await layer.receive("work") == {"type": "new"}


@pytest.mark.parametrize("name", ["", "a" * 100, "bad name", "emoji☃", "tab\t", 12, None, "a!b!c"])
async def test_invalid_channel_names_raise_type_error_naming_the_rule(layer, name):
    with pytest.raises(TypeError, match="Channel name must be a valid"):
        await layer.send(name, {"type": "x"})
    with pytest.raises(TypeError, match="Channel name must be a valid"):
        await layer.receive(name)


@pytest.mark.parametrize("name", ["", "g" * 100, "with space", "bang!", "ünïcode", 5])
async def test_invalid_group_names_raise_type_error(layer, name):
    with pytest.raises(TypeError, match="Group name must be a valid"):
        await layer.group_add(name, "chan")
    with pytest.raises(TypeError, match="Group name must be a valid"):
        await layer.group_send(name, {"type": "x"})
    with pytest.raises(TypeError, match="Group name must be a valid"):
        await layer.group_discard(name, "chan")


@pytest.mark.parametrize("message", [None, "text", ["type"], {"no": "type"}, {"type": 5}])
async def test_messages_must_be_dicts_with_a_string_type(layer, message):
    with pytest.raises(TypeError, match="message"):
        await layer.send("work", message)
    with pytest.raises(TypeError, match="message"):
        await layer.group_send("grp", message)


async def test_valid_names_include_process_local_channels(layer):
    name = await layer.new_channel()
    assert name.startswith("specific.") and "!" in name
    assert layer.require_valid_channel_name(name)
    assert layer.non_local_name("specific.abc!def") == "specific.abc!"
    assert layer.non_local_name("plain") == "plain"
    assert await layer.new_channel() != name


async def test_group_send_reaches_every_member_and_only_members(layer):
    a, b, c = [await layer.new_channel() for _ in range(3)]
    await layer.group_add("room", a)
    await layer.group_add("room", b)
    await layer.group_send("room", {"type": "chat.message", "text": "hi"})
    assert await layer.receive(a) == {"type": "chat.message", "text": "hi"}
    assert await layer.receive(b) == {"type": "chat.message", "text": "hi"}
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(layer.receive(c), 0.05)


async def test_group_discard_stops_delivery_and_is_idempotent(layer):
    a = await layer.new_channel()
    await layer.group_add("room", a)
    await layer.group_discard("room", a)
    await layer.group_discard("room", a)
    await layer.group_discard("never-existed", a)
    await layer.group_send("room", {"type": "x"})
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(layer.receive(a), 0.05)
    assert layer.held() == (0, 0)


async def test_group_send_to_a_full_member_drops_only_for_it_counts_and_logs(layer, caplog):
    full, fine = await layer.new_channel(), await layer.new_channel()
    for _ in range(3):
        await layer.send(full, {"type": "filler"})
    await layer.group_add("room", full)
    await layer.group_add("room", fine)
    with caplog.at_level(logging.WARNING, logger="hubbub.layers"):
        await layer.group_send("room", {"type": "news"})
    assert await layer.receive(fine) == {"type": "news"}
    assert layer.dropped == 1
    assert "1 member channel(s) full" in caplog.text


async def test_group_members_expire_after_group_expiry():
    clock = ManualClock()
    layer = InMemoryChannelLayer(group_expiry=0.05, clock=clock)
    old, new = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("room", old)
    clock.advance(0.08)
    await layer.group_add("room", new)
    assert await layer.group_count("room") == 1
    await layer.group_send("room", {"type": "x"})
    assert await layer.receive(new) == {"type": "x"}
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(layer.receive(old), 0.05)


async def test_group_add_again_refreshes_membership_expiry():
    clock = ManualClock()
    layer = InMemoryChannelLayer(group_expiry=0.1, clock=clock)
    chan = await layer.new_channel()
    await layer.group_add("room", chan)
    clock.advance(0.06)
    await layer.group_add("room", chan)
    clock.advance(0.06)
    assert await layer.group_count("room") == 1


async def test_group_send_shares_one_copy_of_the_message_among_members(layer):
    chans = [await layer.new_channel() for _ in range(3)]
    for chan in chans:
        await layer.group_add("room", chan)
    original = {"type": "x", "payload": [1, 2]}
    await layer.group_send("room", original)
    received = [await layer.receive(chan) for chan in chans]
    assert received[0] is received[1] is received[2]
    assert received[0] == original and received[0] is not original


async def test_cancelled_receive_loses_no_message(layer):
    """A message handed to a receiver that is cancelled before it runs goes back to the channel."""
    chan = await layer.new_channel()
    receiver = asyncio.ensure_future(layer.receive(chan))
    await asyncio.sleep(0)
    await layer.send(chan, {"type": "x", "n": 1})  # resolves the waiter...
    receiver.cancel()  # ...but the receiver is cancelled before it resumes
    with pytest.raises(asyncio.CancelledError):
        await receiver
    assert await layer.receive(chan) == {"type": "x", "n": 1}


async def test_cancelled_receive_under_load_loses_nothing(layer):
    layer = InMemoryChannelLayer(capacity=10_000)
    received = []

    async def consume():
        while True:
            received.append((await layer.receive("work"))["n"])

    for round_ in range(50):
        task = asyncio.ensure_future(consume())
        for n in range(round_ * 20, round_ * 20 + 20):
            await layer.send("work", {"type": "x", "n": n})
            if n % 7 == 0:
                await asyncio.sleep(0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    while True:
        try:
            received.append((await asyncio.wait_for(layer.receive("work"), 0.01))["n"])
        except asyncio.TimeoutError:
            break
    assert sorted(received) == list(range(1000))
    assert len(received) == len(set(received))


async def test_worker_channel_with_several_receivers_delivers_each_message_once(layer):
    layer = InMemoryChannelLayer(capacity=1000)
    got = {0: [], 1: [], 2: []}

    async def worker(i):
        while True:
            got[i].append((await layer.receive("thumbnails"))["n"])

    tasks = [asyncio.ensure_future(worker(i)) for i in range(3)]
    await asyncio.sleep(0)
    for n in range(300):
        await layer.send("thumbnails", {"type": "thumb", "n": n})
        await asyncio.sleep(0)
    await eventually(lambda: sum(map(len, got.values())) == 300, what="every message taken")
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    everything = got[0] + got[1] + got[2]
    assert sorted(everything) == list(range(300))
    assert all(got.values()), "every receiver took a share"


async def test_flush_forgets_messages_and_groups(layer):
    await layer.send("work", {"type": "x"})
    await layer.group_add("room", "work")
    await layer.flush()
    assert layer.held() == (0, 0)
    await layer.group_send("room", {"type": "y"})
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(layer.receive("work"), 0.05)


async def test_memory_stays_flat_across_100000_connect_disconnect_cycles():
    """Channels that come and go as consumers do (join a group, perhaps get a message, leave) leave nothing behind.

    A consumer's listener always waits on its channel again after a message, and that
    wait is cancelled when the consumer ends.
    """
    layer = InMemoryChannelLayer()
    for i in range(100_000):
        chan = await layer.new_channel()
        await layer.group_add("room", chan)
        receiver = asyncio.ensure_future(layer.receive(chan))
        await asyncio.sleep(0)
        if i % 100 == 0:
            await layer.group_send("room", {"type": "tick"})
            await receiver
            receiver = asyncio.ensure_future(layer.receive(chan))
            await asyncio.sleep(0)
        receiver.cancel()
        await asyncio.gather(receiver, return_exceptions=True)
        await layer.group_discard("room", chan)
    assert layer.held() == (0, 0)


async def test_a_one_off_receiver_s_empty_inbox_is_swept():
    clock = ManualClock()
    layer = InMemoryChannelLayer(expiry=0.02, clock=clock)
    await layer.send("once", {"type": "x"})
    assert await layer.receive("once") == {"type": "x"}
    clock.advance(0.03)
    await layer.send("other", {"type": "x"})  # a send past the sweep time runs the sweep
    assert layer.held() == (1, 0)  # only "other" is left


def move_past(clock: ManualClock, moment: float) -> None:
    """Move the layer's clock past ``moment``."""
    clock.now = max(clock.now, moment) + 0.001


async def test_unread_channels_are_purged_by_the_next_receive_not_by_a_send():
    clock = ManualClock()
    layer = InMemoryChannelLayer(expiry=0.2, clock=clock)
    for n in range(50):
        await layer.send(f"abandoned{n}", {"type": "x"})
    move_past(clock, clock() + 0.2)
    layer.expiry = 600  # the next message cannot expire before it is read, however loaded the machine
    await layer.send("fresh", {"type": "x"})
    assert len(layer.channels) == 51  # as in Channels, send() does not purge
    assert await layer.receive("fresh") == {"type": "x"}
    assert layer.channels == {} and layer.held()[0] <= 1  # at most fresh's idle inbox, until the next sweep


def test_local_group_send_to_1000_members_takes_under_2_ms_of_layer_time():
    best = untraced_seconds("plain")  # in a child interpreter, without coverage's tracer
    assert best < 0.002, f"group_send to 1,000 took {best * 1e3:.2f} ms"


async def test_send_from_another_thread_wakes_a_receiver_in_this_loop(layer):
    from asgiref.sync import async_to_sync, sync_to_async

    chan = await layer.new_channel()
    receiver = asyncio.ensure_future(layer.receive(chan))
    await asyncio.sleep(0)

    def sync_view():
        # a new event loop in a worker thread, as a Celery task or management command has
        import asyncio as aio

        aio.run(layer.send(chan, {"type": "from.thread"}))

    await sync_to_async(sync_view, thread_sensitive=False)()
    assert await asyncio.wait_for(receiver, 1) == {"type": "from.thread"}
    assert async_to_sync  # imported for symmetry with real views


def test_base_layer_methods_say_they_are_not_implemented():
    base = BaseChannelLayer()
    with pytest.raises(NotImplementedError):
        asyncio.run(base.send("a", {"type": "x"}))
    with pytest.raises(NotImplementedError, match="groups extension"):
        asyncio.run(base.group_add("g", "a"))


def test_receive_of_a_specific_name_must_end_at_the_bang_when_asked():
    base = BaseChannelLayer()
    assert base.require_valid_channel_name("specific.a!", receive=True)
    with pytest.raises(TypeError, match="must end at the '!'"):
        base.require_valid_channel_name("specific.a!b", receive=True)
    assert base.valid_channel_names(["a", "b!c"])
    with pytest.raises(TypeError, match="non-empty"):
        base.valid_channel_names([])


def test_get_channel_layer_builds_from_settings_and_caches():
    channel_layers.backends.pop("default", None)
    with override_settings(
        CHANNEL_LAYERS={"default": {"BACKEND": "hubbub.layers.InMemoryChannelLayer", "CONFIG": {"capacity": 7}}}
    ):
        layer = get_channel_layer()
        assert isinstance(layer, InMemoryChannelLayer) and layer.capacity == 7
        assert get_channel_layer() is layer
        assert get_channel_layer("other") is None


def test_channels_backend_paths_map_to_hubbub_layers():
    with override_settings(CHANNEL_LAYERS={"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}):
        assert isinstance(get_channel_layer(), InMemoryChannelLayer)


@pytest.mark.parametrize(
    "path, name",
    [
        ("channels_redis.core.RedisChannelLayer", "RedisChannelLayer"),
        ("channels_redis.pubsub.RedisPubSubChannelLayer", "RedisPubSubChannelLayer"),
    ],
)
def test_channels_redis_backend_paths_map_to_hubbub_redis_layers(path, name):
    config = {"hosts": [("127.0.0.1", 6379)], "prefix": "mapped"}  # building a layer opens no connection
    with override_settings(CHANNEL_LAYERS={"default": {"BACKEND": path, "CONFIG": config}}):
        layer = get_channel_layer()
    assert type(layer).__module__.startswith("hubbub.layers.redis") and type(layer).__name__ == name


def test_test_config_is_used_by_make_test_backend():
    with override_settings(
        CHANNEL_LAYERS={"default": {"BACKEND": "hubbub.layers.InMemoryChannelLayer", "TEST_CONFIG": {"expiry": 5}}}
    ):
        assert channel_layers.make_test_backend("default").expiry == 5
    with (
        override_settings(CHANNEL_LAYERS={"default": {"BACKEND": "hubbub.layers.InMemoryChannelLayer"}}),
        pytest.raises(InvalidChannelLayerError, match="No TEST_CONFIG"),
    ):
        channel_layers.make_test_backend("default")


@pytest.mark.parametrize(
    "config, message",
    [
        ({"CONFIG": {}}, "No BACKEND"),
        ({"BACKEND": "nowhere.Layer"}, "Cannot import BACKEND 'nowhere.Layer'"),
        ({"BACKEND": "hubbub.layers.InMemoryChannelLayer", "ROUTING": "x"}, "ROUTING key"),
    ],
)
def test_misconfigured_layers_raise_invalid_channel_layer_error(config, message):
    with override_settings(CHANNEL_LAYERS={"default": config}), pytest.raises(InvalidChannelLayerError, match=message):
        get_channel_layer()


class ThirdPartyLayer(BaseChannelLayer):
    """A layer written for Channels: formats the error template with the kind alone."""

    def explain(self, kind: str) -> str:
        return self.invalid_name_error.format(kind)


@pytest.mark.parametrize("name", ["bad name", "a" * 100])
def test_invalid_name_error_is_a_one_placeholder_template_that_starts_every_name_error(name):
    """Parity 9a: invalid_name_error.format(kind) works and begins the TypeError for a bad or too-long name."""
    layer = ThirdPartyLayer()
    assert layer.explain("Channel") == (
        "Channel name must be a valid unicode string with length < 100 containing only ASCII alphanumerics, "
        "hyphens, underscores, or periods."
    )
    with pytest.raises(TypeError) as channel_error:
        layer.require_valid_channel_name(name)
    assert str(channel_error.value).startswith(layer.explain("Channel"))
    with pytest.raises(TypeError) as group_error:
        layer.require_valid_group_name(name)
    assert str(group_error.value).startswith(layer.explain("Group"))


def test_deprecated_valid_name_spellings_still_check_and_warn_at_the_callers_line():
    """Parity 9b: valid_channel_name / valid_group_name return True or raise.

    Each warns with a DeprecationWarning that names the caller's line (stacklevel 2).
    """
    base = BaseChannelLayer()
    with pytest.warns(
        DeprecationWarning, match=r"^valid_channel_name is deprecated, use require_valid_channel_name instead\.$"
    ) as caught:
        assert base.valid_channel_name("specific.a!", receive=True) is True
    assert caught[0].filename == __file__
    with pytest.warns(
        DeprecationWarning, match=r"^valid_group_name is deprecated, use require_valid_group_name instead\.$"
    ) as caught:
        assert base.valid_group_name("room") is True
    assert caught[0].filename == __file__
    with pytest.warns(DeprecationWarning), pytest.raises(TypeError, match="^Channel name must be a valid"):
        base.valid_channel_name("bad name")
    with pytest.warns(DeprecationWarning), pytest.raises(TypeError, match="^Group name must be a valid"):
        base.valid_group_name("bad!")


async def test_groups_attribute_is_a_live_dict_of_members_and_when_they_joined():
    """Parity 10: layer.groups is {group: {channel: time.time() added}}, kept in step with the layer."""
    before = time.time()
    clock = ManualClock()  # reads the real time now, then stands still until advanced
    layer = InMemoryChannelLayer(group_expiry=0.3, clock=clock)
    await layer.group_add("room", "alice")
    await layer.group_add("room", "bob")
    assert list(layer.groups) == ["room"] and set(layer.groups["room"]) == {"alice", "bob"}
    assert before <= layer.groups["room"]["alice"] <= time.time()
    first = layer.groups["room"]["alice"]
    move_past(clock, first)
    await layer.group_add("room", "alice")  # again: refreshed
    assert layer.groups["room"]["alice"] > first
    await layer.group_discard("room", "alice")
    await layer.group_discard("room", "bob")
    assert layer.groups == {}  # the group key goes with its last member

    await layer.group_add("old", "carol")
    move_past(clock, layer.groups["old"]["carol"] + 0.3)
    await layer.group_send("elsewhere", {"type": "hello"})  # cleans up: carol's membership is too old
    assert layer.groups == {}
    layer.group_expiry = 600  # memberships from here on stay, however loaded the machine
    await layer.group_add("new", "dave")
    layer.groups["new"]["erin"] = clock()  # written from outside: the layer uses it
    await layer.group_send("new", {"type": "hello"})
    assert (await layer.receive("erin"))["type"] == "hello"
    await layer.flush()
    assert layer.groups == {}


async def test_channels_attribute_is_a_live_dict_of_bounded_queues():
    """Parity 10: layer.channels is {channel: queue of (expires_at, message)} with Channels' life cycle."""
    clock = ManualClock()
    layer = InMemoryChannelLayer(capacity=2, clock=clock)
    channels = layer.channels
    await layer.send("inbox", {"type": "a"})
    await layer.send("inbox", {"type": "b"})
    queue = channels["inbox"]
    assert [message for _, message in queue] == [{"type": "a"}, {"type": "b"}]
    assert queue.qsize() == 2 and not queue.empty() and queue[0][0] > time.time()
    with pytest.raises(ChannelFull):
        await layer.send("inbox", {"type": "c"})  # bounded by the channel's capacity
    assert await layer.receive("inbox") == {"type": "a"}
    assert "inbox" in channels
    assert await layer.receive("inbox") == {"type": "b"}
    assert "inbox" not in channels  # the receive that emptied it removed it

    listener = asyncio.ensure_future(layer.receive("listening"))
    await asyncio.sleep(0)
    assert "listening" in channels  # a consumer that is listening has an entry

    layer.expiry = 0.2
    await layer.send("stale", {"type": "old"})
    move_past(clock, channels["stale"][0][0])
    layer.expiry = 600
    await layer.send("other", {"type": "new"})
    assert "stale" in channels  # send() does not purge
    await layer.group_add("room", "stale")
    await layer.group_send("room", {"type": "ping"})  # group_send purges: stale's old message expired unread
    assert "stale" not in channels and layer.groups == {}  # ... so it also left its groups

    await layer.send("listening", {"type": "sent just before the deletion"})
    del channels["listening"]
    assert await asyncio.wait_for(listener, 5) == {"type": "sent just before the deletion"}

    await layer.flush()
    assert channels == {} and layer.channels is channels

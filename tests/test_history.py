"""Group history: numbering, what is kept, recovery answers (on every layer with the extension), configuration."""

from __future__ import annotations

import asyncio

import pytest

from hubbub.history import GroupPolicies, HistoryPolicy
from hubbub.layers import InMemoryChannelLayer, channel_layers
from tests.extension_layers import extension_layer
from tests.layer_timing import untraced_seconds

pytestmark = pytest.mark.timeout(20)

layer = extension_layer("history", groups={"chat_*": {"history": 5}})


async def send_n(layer: InMemoryChannelLayer, group: str, count: int) -> None:
    for n in range(count):
        await layer.group_send(group, {"type": "chat.message", "n": n})


async def test_messages_to_a_history_group_are_numbered_from_1_in_one_epoch(layer):
    member = await layer.new_channel()
    await layer.group_add("chat_a", member)
    await send_n(layer, "chat_a", 3)
    got = [await layer.receive(member) for _ in range(3)]
    assert [m["_offset"] for m in got] == [1, 2, 3]
    assert len({m["_epoch"] for m in got}) == 1 and isinstance(got[0]["_epoch"], str)
    assert [m["n"] for m in got] == [0, 1, 2]


async def test_history_is_kept_with_no_member_listening(layer):
    await send_n(layer, "chat_empty", 2)
    answer = await layer.group_history("chat_empty", epoch=None)
    assert answer["offset"] == 2


async def test_groups_without_history_are_not_numbered_or_kept(layer):
    member = await layer.new_channel()
    await layer.group_add("plain", member)
    await layer.group_send("plain", {"type": "x"})
    assert await layer.receive(member) == {"type": "x"}
    assert await layer.group_history("plain") == {"epoch": None, "offset": 0, "recovered": True, "messages": []}
    assert (await layer.group_history("plain", epoch="e", since=0))["recovered"] is False


async def test_the_senders_dict_is_not_changed(layer):
    message = {"type": "chat.message"}
    await layer.group_send("chat_a", message)
    assert message == {"type": "chat.message"}


async def test_fresh_subscriber_gets_the_position_and_no_messages(layer):
    await send_n(layer, "chat_a", 3)
    answer = await layer.group_history("chat_a")
    assert answer["recovered"] is True and answer["offset"] == 3 and answer["messages"] == []


async def test_a_group_that_never_had_a_message_starts_its_epoch_on_first_question(layer):
    first = await layer.group_history("chat_new")
    assert first["offset"] == 0 and first["epoch"]
    await send_n(layer, "chat_new", 1)
    again = await layer.group_history("chat_new", epoch=first["epoch"], since=0)
    assert again["recovered"] is True and [m["_offset"] for m in again["messages"]] == [1]


async def test_reconnecting_subscriber_gets_exactly_what_it_missed_in_order(layer):
    await send_n(layer, "chat_a", 2)
    seen = await layer.group_history("chat_a")
    await send_n(layer, "chat_a", 3)
    answer = await layer.group_history("chat_a", epoch=seen["epoch"], since=seen["offset"])
    assert answer["recovered"] is True
    assert [m["_offset"] for m in answer["messages"]] == [3, 4, 5]
    assert [m["n"] for m in answer["messages"]] == [0, 1, 2]
    assert answer["offset"] == 5


async def test_up_to_date_subscriber_recovers_nothing_missing(layer):
    await send_n(layer, "chat_a", 4)
    seen = await layer.group_history("chat_a")
    answer = await layer.group_history("chat_a", epoch=seen["epoch"], since=4)
    assert answer["recovered"] is True and answer["messages"] == []


async def test_gap_older_than_the_ring_buffer_is_not_recovered(layer):
    await send_n(layer, "chat_a", 2)
    seen = await layer.group_history("chat_a")
    await send_n(layer, "chat_a", 6)  # 8 sent, only 4..8 held
    answer = await layer.group_history("chat_a", epoch=seen["epoch"], since=2)
    assert answer == {"epoch": seen["epoch"], "offset": 8, "recovered": False, "messages": []}
    edge = await layer.group_history("chat_a", epoch=seen["epoch"], since=3)  # 4..8 all held
    assert edge["recovered"] is True and [m["_offset"] for m in edge["messages"]] == [4, 5, 6, 7, 8]


async def test_another_epoch_is_not_recovered(layer):
    await send_n(layer, "chat_a", 2)
    answer = await layer.group_history("chat_a", epoch="from-before-a-restart", since=1)
    assert answer["recovered"] is False and answer["messages"] == []


async def test_an_offset_ahead_of_the_group_is_not_recovered(layer):
    await send_n(layer, "chat_a", 2)
    seen = await layer.group_history("chat_a")
    assert (await layer.group_history("chat_a", epoch=seen["epoch"], since=3))["recovered"] is False
    assert (await layer.group_history("chat_a", epoch=seen["epoch"], since=-1))["recovered"] is False


async def test_flush_loses_history_and_the_epoch_changes(layer):
    await send_n(layer, "chat_a", 2)
    seen = await layer.group_history("chat_a")
    await layer.flush()
    answer = await layer.group_history("chat_a", epoch=seen["epoch"], since=2)
    assert answer["recovered"] is False and answer["epoch"] != seen["epoch"] and answer["offset"] == 0


async def test_ttl_drops_old_messages(layer):
    layer.configure_group("ticker", ttl=0.05)
    await send_n(layer, "ticker", 2)
    seen_epoch = (await layer.group_history("ticker"))["epoch"]
    assert len((await layer.group_history("ticker", epoch=seen_epoch, since=0))["messages"]) == 2
    await asyncio.sleep(0.08)
    await send_n(layer, "ticker", 1)
    assert (await layer.group_history("ticker", epoch=seen_epoch, since=0))["recovered"] is False
    answer = await layer.group_history("ticker", epoch=seen_epoch, since=2)
    assert answer["recovered"] is True and [m["_offset"] for m in answer["messages"]] == [3]


async def test_history_and_ttl_together_keep_the_stricter(layer):
    layer.configure_group("both", history=3, ttl=60)
    await send_n(layer, "both", 5)
    epoch = (await layer.group_history("both"))["epoch"]
    assert (await layer.group_history("both", epoch=epoch, since=1))["recovered"] is False
    assert len((await layer.group_history("both", epoch=epoch, since=2))["messages"]) == 3


async def test_reconfiguring_applies_to_a_running_history_and_keeps_its_epoch(layer):
    await send_n(layer, "chat_a", 5)
    epoch = (await layer.group_history("chat_a"))["epoch"]
    layer.configure_group("chat_*", history=2)
    answer = await layer.group_history("chat_a", epoch=epoch, since=3)
    assert answer["epoch"] == epoch and [m["_offset"] for m in answer["messages"]] == [4, 5]
    assert (await layer.group_history("chat_a", epoch=epoch, since=2))["recovered"] is False


async def test_first_matching_pattern_wins():
    policies = GroupPolicies({"chat_vip*": {"history": 1000}, "chat_*": {"history": 10, "ttl": 5}})
    assert policies.policy("chat_vip_lounge") == HistoryPolicy(history=1000)
    assert policies.policy("chat_lobby") == HistoryPolicy(history=10, ttl=5)
    assert policies.policy("news") is None


def test_groups_come_from_the_channel_layers_setting(settings):
    settings.CHANNEL_LAYERS = {
        "configured": {
            "BACKEND": "hubbub.layers.InMemoryChannelLayer",
            "CONFIG": {"groups": {"chat_*": {"history": 100, "ttl": 300}}, "presence_timeout": 10},
        }
    }
    layer = channel_layers["configured"]
    assert layer.history_policy("chat_x") == HistoryPolicy(history=100, ttl=300)
    assert layer.presence_timeout == 10


@pytest.mark.parametrize(
    "options, error",
    [
        ({}, "needs history=N"),
        ({"history": 0}, "positive number of messages"),
        ({"history": 2.5}, "positive number of messages"),
        ({"history": True}, "positive number of messages"),
        ({"ttl": 0}, "positive number of seconds"),
        ({"ttl": "5"}, "positive number of seconds"),
    ],
)
def test_bad_history_settings_raise_value_error(options, error):
    with pytest.raises(ValueError, match=error):
        InMemoryChannelLayer().configure_group("g*", **options)


def test_unknown_keys_in_the_groups_setting_raise_value_error():
    with pytest.raises(ValueError, match="unknown key"):
        InMemoryChannelLayer(groups={"chat_*": {"history": 5, "size": 3}})


def test_a_pattern_must_be_a_non_empty_string():
    with pytest.raises(TypeError):
        InMemoryChannelLayer().configure_group("", history=1)


@pytest.mark.parametrize("kwargs", [{"epoch": 5}, {"since": "3"}, {"since": True}, {"since": 1.5}])
async def test_bad_history_questions_raise_type_error(layer, kwargs):
    with pytest.raises(TypeError):
        await layer.group_history("chat_a", **kwargs)


async def test_invalid_group_names_raise_type_error(layer):
    with pytest.raises(TypeError):
        await layer.group_history("chat a")
    with pytest.raises(TypeError):
        await layer.group_send("chat a", {"type": "x"})


def test_history_costs_nothing_for_groups_without_it_and_little_for_those_with_it():
    # Measured in a child interpreter, without coverage's tracer (tests/layer_timing.py).
    plain = untraced_seconds("history-layer-plain-group")
    assert plain < 0.002, f"group_send to 1,000 members took {plain * 1e3:.2f} ms"
    kept = untraced_seconds("history-group")
    assert kept < 0.002, f"group_send to 1,000 members of a history group took {kept * 1e3:.2f} ms"

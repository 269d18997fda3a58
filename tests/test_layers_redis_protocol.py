"""The Redis layers' bookkeeping and encodings, without Redis: frames, names, inboxes, members."""

from __future__ import annotations

import asyncio
import decimal

import pytest

from hubbub.layers.inbox import Inboxes, Item
from hubbub.layers.redis.local import Members
from hubbub.layers.redis.protocol import (
    GROUP,
    JOIN,
    Keys,
    membership_frame,
    message_frame,
    parse_frame,
    process_of,
    shard_index,
)
from hubbub.layers.redis.serializers import registry


def test_message_frame_round_trips_with_any_payload_bytes():
    payload = b"\x00binary\x00with separators\x00"
    frame = parse_frame(message_frame(GROUP, "room", 1234, payload))
    assert (frame.kind, frame.target, frame.expires_ms, frame.seq, frame.payload) == (GROUP, "room", 1234, b"", payload)


def test_membership_frame_round_trips():
    frame = parse_frame(membership_frame(JOIN, "room", "specific.abc!def"))
    assert (frame.kind, frame.target, frame.channel) == (JOIN, "room", "specific.abc!def")


def test_foreign_bytes_are_not_a_frame():
    with pytest.raises(ValueError):
        parse_frame(b"\x93\xa4type")


def test_process_of_reads_the_process_id_of_process_local_names_only():
    assert process_of("specific.abc123!xyz") == "abc123"
    assert process_of("custom.prefix.abc!") == "abc"
    assert process_of("worker-queue") is None


def test_same_name_always_lands_on_the_same_shard_and_names_spread():
    names = [f"group{i}" for i in range(200)]
    assert [shard_index(n, 3) for n in names] == [shard_index(n, 3) for n in names]
    assert {shard_index(n, 3) for n in names} == {0, 1, 2}
    assert shard_index("anything", 1) == 0


def test_key_pattern_escapes_glob_characters_in_the_prefix():
    assert Keys("a*b?").pattern() == "a\\*b\\?:*"


@pytest.mark.parametrize("format", ["msgpack", "json"])
def test_serializer_error_names_the_unencodable_type(format):
    serializer = registry.get_serializer(format)
    with pytest.raises(TypeError, match="Decimal"):
        serializer.serialize({"type": "x", "nested": {"list": [1, decimal.Decimal("2")]}})


def test_single_key_string_is_refused_as_encryption_keys():
    with pytest.raises(ValueError, match="list"):
        registry.get_serializer("msgpack", symmetric_encryption_keys="just-one-key")


def test_inbox_full_of_uncounted_items_refuses_more_but_counted_ones_pass():
    inboxes = Inboxes(lambda channel: 2)
    assert inboxes.deliver("c", Item(1e12, {"type": "1"}, False))
    assert inboxes.deliver("c", Item(1e12, {"type": "2"}, False))
    assert not inboxes.deliver("c", Item(1e12, {"type": "3"}, False))
    assert inboxes.deliver("c", Item(1e12, {"type": "direct"}, True))  # Redis already checked its capacity


async def test_item_handed_to_a_cancelled_receiver_goes_back_to_the_head():
    inboxes = Inboxes(lambda channel: 10)
    taking = asyncio.ensure_future(inboxes.take("c", lambda: 0.0, lambda ch, it: None))
    await asyncio.sleep(0)
    inboxes.deliver("c", Item(1e12, {"type": "first"}, False))
    inboxes.deliver("c", Item(1e12, {"type": "second"}, False))
    taking.cancel()  # after the first item was handed over, before the receiver ran
    with pytest.raises(asyncio.CancelledError):
        await taking
    first = await inboxes.take("c", lambda: 0.0, lambda ch, it: None)
    assert first.message == {"type": "first"}


async def test_expired_items_are_skipped_and_reported():
    inboxes = Inboxes(lambda channel: 10)
    inboxes.deliver("c", Item(5.0, {"type": "old"}, True))
    inboxes.deliver("c", Item(50.0, {"type": "new"}, False))
    expired = []
    item = await inboxes.take("c", lambda: 10.0, lambda ch, it: expired.append(it.message["type"]))
    assert item.message == {"type": "new"} and expired == ["old"]


def test_sweep_drops_expired_items_and_empty_inboxes():
    inboxes = Inboxes(lambda channel: 10)
    inboxes.deliver("a", Item(5.0, {"type": "old"}, False))
    inboxes.deliver("b", Item(50.0, {"type": "live"}, False))
    inboxes.sweep(10.0, lambda ch, it: None)
    assert len(inboxes) == 1


def test_members_expire_oldest_first_and_report_an_emptied_group():
    members = Members()
    members.add("g", "a", 10.0)
    members.add("g", "b", 20.0)
    members.add("g", "a", 30.0)  # refreshed: now the newest
    assert members.live("g", 15.0) == ["b", "a"]
    assert members.live("g", 25.0) == ["a"]
    assert members.discard("unknown", "x") is True  # no members here: nothing to route
    assert members.discard("g", "a") is True
    assert "g" not in members

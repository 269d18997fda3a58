"""The layer contract in hubbub.layers.base: shared argument checks and the typed results, on every layer."""

from __future__ import annotations

from typing import Any, get_type_hints

import pytest

from hubbub.history import HistoryAnswer
from hubbub.layers import InMemoryChannelLayer
from hubbub.layers.base import PresenceMember
from hubbub.layers.redis import RedisChannelLayer, RedisPubSubChannelLayer


@pytest.fixture(params=["inmemory", "redis", "pubsub"])
async def layer(request: pytest.FixtureRequest, redis_prefix: str):
    if request.param == "inmemory":
        made: Any = InMemoryChannelLayer(groups={"kept.*": {"history": 10}})
    else:
        url = request.getfixturevalue("redis_url")
        cls = RedisChannelLayer if request.param == "redis" else RedisPubSubChannelLayer
        made = cls(hosts=[url], prefix=redis_prefix, groups={"kept.*": {"history": 10}})
    yield made
    await made.flush()
    await made.close()


@pytest.mark.parametrize(
    "epoch, since, error",
    [
        (5, 0, "epoch must be a string or None"),
        (None, "3", "since must be an int"),
        (None, True, "since must be an int"),
        (None, 1.5, "since must be an int"),
    ],
)
async def test_group_history_refuses_a_bad_position_with_the_same_error_on_every_layer(
    layer: Any, epoch: Any, since: Any, error: str
) -> None:
    with pytest.raises(TypeError, match=error):
        await layer.group_history("kept.room", epoch=epoch, since=since)


async def test_group_history_refuses_a_bad_group_name_on_every_layer(layer: Any) -> None:
    with pytest.raises(TypeError, match="Group name must be"):
        await layer.group_history("bad name!", epoch=None, since=0)


async def test_group_history_answers_exactly_the_keys_of_history_answer(layer: Any, redis_prefix: str) -> None:
    """The TypedDict documents the answer truthfully: same keys, with and without history."""
    group = f"kept.{redis_prefix}"  # its own group: the process-wide group_send counts stay apart
    channel = await layer.new_channel()
    await layer.group_add(group, channel)
    await layer.group_send(group, {"type": "note", "n": 1})
    fresh = await layer.group_history(group)
    answer = await layer.group_history(group, epoch=fresh["epoch"], since=0)
    without = await layer.group_history("plain.room")
    keys = set(get_type_hints(HistoryAnswer))
    assert set(answer) == set(without) == keys
    assert answer["recovered"] is True and [m["n"] for m in answer["messages"]] == [1]
    assert without["epoch"] is None and without["offset"] == 0


async def test_presence_members_have_exactly_the_keys_of_presence_member(layer: Any, redis_prefix: str) -> None:
    group = f"lobby.{redis_prefix}"  # its own group: the process-wide group_send counts stay apart
    channel = await layer.new_channel()
    added = await layer.presence_add(group, channel, user_id=7, info={"name": "ann"})
    listed = await layer.presence(group)
    assert set(added) == set(get_type_hints(PresenceMember))
    assert [dict(m) for m in listed] == [dict(added)]
    assert added["user_id"] == 7 and added["info"] == {"name": "ann"}
    await layer.presence_remove(group, channel)

"""Presence: the layer's member lists and events (on every layer with the extension), and ``self.presence``."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from hubbub.generic.websocket import AsyncJsonWebsocketConsumer
from hubbub.layers import BaseChannelLayer, InMemoryChannelLayer
from hubbub.testing import WebsocketCommunicator
from tests.extension_layers import extension_layer

pytestmark = pytest.mark.timeout(20)

layer = extension_layer("presence", groups={"room": {"history": 10}})


# -- the layer ------------------------------------------------------------------------


async def test_layer_declares_presence_and_its_timeout_defaults_to_30_s(layer):
    assert {"groups", "presence"} <= set(layer.extensions)
    assert layer.presence_timeout == 30


def test_in_memory_layer_has_both_extensions_and_takes_a_presence_timeout():
    assert {"presence", "history"} <= set(InMemoryChannelLayer.extensions)
    assert InMemoryChannelLayer(presence_timeout=5).presence_timeout == 5


async def test_add_lists_the_member_and_announces_the_join_to_the_group(layer):
    watcher = await layer.new_channel()
    await layer.group_add("room", watcher)
    before = time.time()
    member = await layer.presence_add("room", "specific.one", user_id=7, info={"name": "Ann"})
    assert member["channel"] == "specific.one" and member["user_id"] == 7 and member["info"] == {"name": "Ann"}
    assert before <= member["joined_at"] <= time.time()
    assert await layer.presence("room") == [member]
    event = await layer.receive(watcher)
    assert event == {"type": "presence.join", "group": "room", "member": member}


async def test_remove_announces_the_leave_and_says_whether_it_was_present(layer):
    watcher = await layer.new_channel()
    await layer.group_add("room", watcher)
    member = await layer.presence_add("room", "specific.one")
    await layer.receive(watcher)  # the join
    assert await layer.presence_remove("room", "specific.one") is True
    assert await layer.receive(watcher) == {"type": "presence.leave", "group": "room", "member": member}
    assert await layer.presence("room") == []
    assert await layer.presence_remove("room", "specific.one") is False


async def test_adding_again_updates_info_keeps_joined_at_and_announces_again(layer):
    first = await layer.presence_add("room", "specific.one", info={"status": "away"})
    again = await layer.presence_add("room", "specific.one", info={"status": "here"})
    assert again["joined_at"] == first["joined_at"]
    assert [m["info"] for m in await layer.presence("room")] == [{"status": "here"}]


async def test_members_are_listed_in_join_order_and_groups_are_separate(layer):
    for name in ("a", "b", "c"):
        await layer.presence_add("room", f"specific.{name}")
    await layer.presence_add("other", "specific.z")
    assert [m["channel"] for m in await layer.presence("room")] == ["specific.a", "specific.b", "specific.c"]
    assert [m["channel"] for m in await layer.presence("other")] == ["specific.z"]
    assert await layer.presence("nobody-here") == []


async def test_listed_members_are_copies_the_caller_may_change(layer):
    await layer.presence_add("room", "specific.one", info="x")
    (listed,) = await layer.presence("room")
    listed["info"] = "changed"
    assert (await layer.presence("room"))[0]["info"] == "x"


async def test_presence_events_are_not_numbered_or_kept_in_history(layer):
    if "history" not in layer.extensions:
        pytest.skip(f"{type(layer).__name__} keeps no history")
    watcher = await layer.new_channel()
    await layer.group_add("room", watcher)
    await layer.presence_add("room", "specific.one")
    assert "_offset" not in await layer.receive(watcher)
    assert (await layer.group_history("room"))["offset"] == 0


@pytest.mark.parametrize("group, channel", [("bad group", "specific.one"), ("room", "bad channel"), ("room", 5)])
async def test_invalid_names_raise_type_error(layer, group, channel):
    with pytest.raises(TypeError):
        await layer.presence_add(group, channel)
    with pytest.raises(TypeError):
        await layer.presence_remove(group, channel)


async def test_invalid_group_name_when_listing_raises_type_error(layer):
    with pytest.raises(TypeError):
        await layer.presence("no spaces allowed")


async def test_flush_forgets_presence(layer):
    await layer.presence_add("room", "specific.one")
    await layer.flush()
    assert await layer.presence("room") == []


async def test_group_count_counts_without_listing(layer):
    for n in range(3):
        await layer.group_add("room", f"specific.m{n}")
    assert await layer.group_count("room") == 3
    assert await layer.group_count("empty") == 0


async def test_base_layer_says_clearly_what_it_lacks():
    base = BaseChannelLayer()
    with pytest.raises(NotImplementedError, match="presence extension"):
        await base.presence_add("room", "specific.one")
    with pytest.raises(NotImplementedError, match="presence extension"):
        await base.presence_remove("room", "specific.one")
    with pytest.raises(NotImplementedError, match="presence extension"):
        await base.presence("room")
    with pytest.raises(NotImplementedError, match="history extension"):
        base.configure_group("room", history=1)
    with pytest.raises(NotImplementedError, match="history extension"):
        await base.group_history("room")
    with pytest.raises(NotImplementedError, match="group_count"):
        await base.group_count("room")


# -- consumers ------------------------------------------------------------------------


class Lobby(AsyncJsonWebsocketConsumer):
    """Joins the lobby with the info the client sends; forwards presence events to the client."""

    async def receive_json(self, content, **kwargs):
        if content["do"] == "join":
            member = await self.presence.join("lobby", info=content.get("info"))
            await self.send_json({"joined": member["info"], "user_id": member["user_id"]})
        elif content["do"] == "leave":
            await self.send_json({"left": await self.presence.leave("lobby")})
        elif content["do"] == "list":
            await self.send_json({"members": [m["info"] for m in await self.presence.members("lobby")]})

    async def presence_join(self, event):
        await self.send_json({"event": "join", "info": event["member"]["info"]})

    async def presence_leave(self, event):
        await self.send_json({"event": "leave", "info": event["member"]["info"]})


async def connect(scope_user=None) -> WebsocketCommunicator:
    app = Lobby.as_asgi()
    if scope_user is not None:
        inner = app

        async def app(scope, receive, send):  # what AuthMiddleware would have done
            return await inner({**scope, "user": scope_user}, receive, send)

    client = WebsocketCommunicator(app, "/lobby/")
    assert (await client.connect())[0]
    return client


async def test_join_lists_the_consumer_and_both_members_hear_of_each_other(fresh_layer):
    ann, bob = await connect(), await connect()
    await ann.send_json_to({"do": "join", "info": "ann"})
    assert await ann.receive_json_from() == {"joined": "ann", "user_id": None}
    assert await ann.receive_json_from() == {"event": "join", "info": "ann"}  # its own join: it is a group member
    await bob.send_json_to({"do": "join", "info": "bob"})
    assert await ann.receive_json_from() == {"event": "join", "info": "bob"}
    await bob.receive_json_from()
    await bob.receive_json_from()
    await bob.send_json_to({"do": "list"})
    assert await bob.receive_json_from() == {"members": ["ann", "bob"]}
    assert await fresh_layer.group_count("lobby") == 2
    await bob.send_json_to({"do": "leave"})
    assert await ann.receive_json_from() == {"event": "leave", "info": "bob"}
    assert await bob.receive_json_from() == {"left": True}
    await bob.send_json_to({"do": "leave"})
    assert await bob.receive_json_from() == {"left": False}
    await ann.disconnect()
    await bob.disconnect()


async def test_a_consumer_that_ends_leaves_every_group_it_joined(fresh_layer):
    ann, bob = await connect(), await connect()
    await ann.send_json_to({"do": "join", "info": "ann"})
    await ann.receive_json_from()
    await ann.receive_json_from()
    await bob.send_json_to({"do": "join", "info": "bob"})
    await ann.receive_json_from()
    await bob.disconnect()
    assert await ann.receive_json_from() == {"event": "leave", "info": "bob"}
    assert [m["info"] for m in await fresh_layer.presence("lobby")] == ["ann"]
    assert await fresh_layer.group_count("lobby") == 1
    await ann.disconnect()
    assert await fresh_layer.presence("lobby") == []
    assert await fresh_layer.group_count("lobby") == 0


async def test_a_consumer_that_crashes_leaves_presence_too(fresh_layer):
    class Crashing(Lobby):
        async def receive_json(self, content, **kwargs):
            if content["do"] == "crash":
                raise RuntimeError("boom")
            await super().receive_json(content, **kwargs)

    client = WebsocketCommunicator(Crashing.as_asgi(), "/lobby/")
    await client.connect()
    await client.send_json_to({"do": "join", "info": "doomed"})
    await client.receive_json_from()
    await client.receive_json_from()
    await client.send_json_to({"do": "crash"})
    with pytest.raises(RuntimeError, match="boom"):
        await client.wait(1)
    assert await fresh_layer.presence("lobby") == []


async def test_authenticated_user_id_is_recorded_and_anonymous_is_none(fresh_layer):
    user = SimpleNamespace(is_authenticated=True, pk=42)
    client = await connect(scope_user=user)
    await client.send_json_to({"do": "join"})
    assert await client.receive_json_from() == {"joined": None, "user_id": 42}
    await client.disconnect()
    anonymous = await connect(scope_user=SimpleNamespace(is_authenticated=False, pk=None))
    await anonymous.send_json_to({"do": "join"})
    assert (await anonymous.receive_json_from())["user_id"] is None
    await anonymous.disconnect()


async def test_presence_is_made_lazily_and_only_when_used():
    consumer = Lobby()
    assert "presence" not in consumer.__dict__
    assert consumer.presence is consumer.presence
    assert consumer.presence.joined == []


async def test_join_without_a_channel_layer_says_so():
    consumer = Lobby()
    consumer.channel_layer = None
    with pytest.raises(RuntimeError, match="needs a channel layer"):
        await consumer.presence.join("lobby")

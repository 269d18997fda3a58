"""hubbub.broadcast and broadcasts(Model): announced after the commit, never after a rollback."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from asgiref.sync import async_to_sync
from django.core import serializers
from django.db import transaction
from django.test import override_settings

import hubbub
from hubbub.broadcast import abroadcast, broadcast, broadcasts
from hubbub.exceptions import ChannelLayerUnavailable, InvalidChannelLayerError
from tests.broadcast_app.models import Headline

db = pytest.mark.django_db(transaction=True)


async def _member(layer, group: str) -> str:
    channel = await layer.new_channel()
    await layer.group_add(group, channel)
    return channel


async def _drain(layer, channel: str, quiet: float = 0.05) -> list[dict]:
    messages = []
    while True:
        try:
            messages.append(await asyncio.wait_for(layer.receive(channel), quiet))
        except asyncio.TimeoutError:
            return messages


def member(layer, group: str) -> str:
    return async_to_sync(_member)(layer, group)


def drain(layer, channel: str, quiet: float = 0.05) -> list[dict]:
    return async_to_sync(_drain)(layer, channel, quiet)


@pytest.fixture
def headlines():
    """Headline changes announced to ``room_<room>``, with the title, except for room "quiet"."""
    announcer = broadcasts(Headline, group=lambda h: None if h.room == "quiet" else f"room_{h.room}")

    @announcer
    def fields(headline, event):
        return {"title": headline.title}

    yield announcer
    announcer.disconnect()


@db
def test_outside_a_transaction_the_message_goes_at_once(fresh_layer):
    channel = member(fresh_layer, "news")
    broadcast("news", "news.flash", text="now")
    assert drain(fresh_layer, channel) == [{"type": "news.flash", "text": "now"}]


@db
def test_inside_a_transaction_the_message_waits_for_the_commit(fresh_layer):
    channel = member(fresh_layer, "news")
    with transaction.atomic():
        broadcast("news", "news.flash", text="later")
        assert drain(fresh_layer, channel) == []
    assert drain(fresh_layer, channel) == [{"type": "news.flash", "text": "later"}]


@db
def test_a_rolled_back_transaction_announces_nothing(fresh_layer):
    channel = member(fresh_layer, "news")
    with pytest.raises(RuntimeError), transaction.atomic():
        Headline.objects.create(room="a", title="never happened")
        broadcast("news", "news.flash", text="never happened")
        raise RuntimeError("roll back")
    assert Headline.objects.count() == 0
    assert drain(fresh_layer, channel) == []


@db
async def test_on_the_redis_layer_commit_announces_and_rollback_does_not(redis_url, redis_prefix, headlines):
    from hubbub.layers import channel_layers
    from hubbub.layers.redis import RedisChannelLayer

    layer = RedisChannelLayer(hosts=[redis_url], prefix=redis_prefix)
    channel_layers.set("default", layer)  # the autouse fresh_layer fixture puts the old one back
    channel = await _member(layer, "room_lobby")

    def view_work() -> int:  # what a sync view or a task does, in a thread of its own
        with pytest.raises(RuntimeError), transaction.atomic():
            Headline.objects.create(room="lobby", title="retracted")
            raise RuntimeError("roll back")
        with transaction.atomic():
            headline = Headline.objects.create(room="lobby", title="kept")
            broadcast("room_lobby", "news.flash", text="also kept")
        return headline.pk

    # Not the thread database_sync_to_async uses: the SQLite connection opened here must not
    # outlive the test in the thread later tests' consumers check connections in.
    pk = await asyncio.to_thread(view_work)
    assert await _drain(layer, channel, quiet=0.5) == [
        {
            "type": "broadcast_app.headline",
            "event": "created",
            "model": "broadcast_app.headline",
            "pk": pk,
            "title": "kept",
        },
        {"type": "news.flash", "text": "also kept"},
    ]


@db
def test_a_rolled_back_savepoint_drops_only_its_own_messages(fresh_layer):
    channel = member(fresh_layer, "news")
    with transaction.atomic():
        broadcast("news", "news.flash", text="outer")
        try:
            with transaction.atomic():
                broadcast("news", "news.flash", text="inner")
                raise RuntimeError("roll back the savepoint")
        except RuntimeError:
            pass
    assert [m["text"] for m in drain(fresh_layer, channel)] == ["outer"]


@db
def test_model_changes_are_announced_after_commit_with_event_pk_and_extra_fields(fresh_layer, headlines):
    channel = member(fresh_layer, "room_lobby")
    with transaction.atomic():
        headline = Headline.objects.create(room="lobby", title="Opening")
        assert drain(fresh_layer, channel) == []
    headline.title = "Opened"
    headline.save()
    pk = headline.pk
    headline.delete()
    assert drain(fresh_layer, channel) == [
        {
            "type": "broadcast_app.headline",
            "event": "created",
            "model": "broadcast_app.headline",
            "pk": pk,
            "title": "Opening",
        },
        {
            "type": "broadcast_app.headline",
            "event": "updated",
            "model": "broadcast_app.headline",
            "pk": pk,
            "title": "Opened",
        },
        {
            "type": "broadcast_app.headline",
            "event": "deleted",
            "model": "broadcast_app.headline",
            "pk": pk,
            "title": "Opened",
        },
    ]


@db
def test_model_change_rolled_back_is_not_announced(fresh_layer, headlines):
    channel = member(fresh_layer, "room_lobby")
    with pytest.raises(RuntimeError), transaction.atomic():
        Headline.objects.create(room="lobby", title="Retracted")
        raise RuntimeError("roll back")
    assert drain(fresh_layer, channel) == []


@db
def test_group_function_returning_none_and_fixture_loading_announce_nothing(fresh_layer, headlines):
    quiet, lobby = member(fresh_layer, "room_quiet"), member(fresh_layer, "room_lobby")
    Headline.objects.create(room="quiet", title="hush")
    fixture = '[{"model": "broadcast_app.headline", "pk": 50, "fields": {"room": "lobby", "title": "loaded"}}]'
    for obj in serializers.deserialize("json", fixture):
        obj.save()  # a raw save, as loaddata does
    assert Headline.objects.filter(pk=50).exists()
    assert drain(fresh_layer, quiet) == [] and drain(fresh_layer, lobby) == []


@db
def test_type_can_be_chosen_and_a_plain_call_needs_no_decorator(fresh_layer):
    announcer = broadcasts(Headline, group="all_headlines", type="headline.changed")
    try:
        channel = member(fresh_layer, "all_headlines")
        headline = Headline.objects.create(room="x", title="t")
        assert drain(fresh_layer, channel) == [
            {"type": "headline.changed", "event": "created", "model": "broadcast_app.headline", "pk": headline.pk}
        ]
    finally:
        announcer.disconnect()


async def test_from_async_code_it_is_sent_at_once_and_abroadcast_waits_for_the_send(fresh_layer):
    channel = await _member(fresh_layer, "news")
    broadcast("news", "news.flash", text="from a handler")
    assert await asyncio.wait_for(fresh_layer.receive(channel), 1) == {"type": "news.flash", "text": "from a handler"}
    await abroadcast("news", "news.flash", text="awaited")
    assert await _drain(fresh_layer, channel) == [{"type": "news.flash", "text": "awaited"}]


@db
def test_hubbub_broadcast_is_callable_whatever_was_imported_first(fresh_layer):
    channel = member(fresh_layer, "news")
    hubbub.broadcast("news", "news.flash", n=1)
    from hubbub import broadcast as from_package
    from hubbub import broadcasts as helper

    from_package("news", "news.flash", n=2)
    assert helper is broadcasts
    assert [m["n"] for m in drain(fresh_layer, channel)] == [1, 2]


def run_fresh(code: str) -> str:
    """Run ``code`` in a new interpreter on this checkout's hubbub, with no Django settings; its output."""
    env = {name: value for name, value in os.environ.items() if name != "DJANGO_SETTINGS_MODULE"}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize(
    "first",
    [
        "import hubbub",
        "import hubbub.broadcast",
        "from hubbub.broadcast import broadcasts",
        "from hubbub import broadcast",
        "import hubbub.layers",
        "import hubbub.broadcast as module",
    ],
)
def test_hubbub_broadcast_is_the_function_of_a_plain_module_whatever_is_imported_first(first):
    """In a fresh interpreter: ``hubbub.broadcast`` is the module's function; the module is a plain module."""
    run_fresh(f"""{first}
import importlib, types, hubbub
module = importlib.import_module("hubbub.broadcast")
assert type(module) is types.ModuleType, type(module)
assert not callable(module)
assert hubbub.broadcast is module.broadcast, hubbub.broadcast
assert (hubbub.abroadcast, hubbub.broadcasts) == (module.abroadcast, module.broadcasts)
""")


def test_import_hubbub_needs_no_settings_and_loads_neither_the_orm_nor_the_layers():
    """``import hubbub`` loads hubbub.broadcast, which defers Django's ORM, asgiref and the layers to its calls."""
    loaded = run_fresh("""import sys, hubbub
print(" ".join(name for name in ("django.db.models", "django.db", "asgiref.sync", "hubbub.layers", "hubbub.metrics")
               if name in sys.modules))
""")
    assert loaded.strip() == ""


@db
def test_a_failed_send_after_commit_is_logged_and_the_change_stays(fresh_layer, headlines, caplog, monkeypatch):
    async def broken(group, message):
        raise ConnectionError("layer unreachable")

    monkeypatch.setattr(fresh_layer, "group_send", broken)
    with caplog.at_level(logging.ERROR):
        Headline.objects.create(room="lobby", title="kept")
    assert Headline.objects.filter(title="kept").exists()
    assert "broadcast of 'broadcast_app.headline' to group 'room_lobby' failed" in caplog.text


@db
def test_a_send_during_a_layer_outage_is_one_error_line_without_a_traceback(
    fresh_layer, headlines, caplog, monkeypatch
):
    async def down(group, message):
        raise ChannelLayerUnavailable("Redis at 127.0.0.1:6399 is unreachable")

    monkeypatch.setattr(fresh_layer, "group_send", down)
    with caplog.at_level(logging.ERROR):
        Headline.objects.create(room="lobby", title="kept")
    assert Headline.objects.filter(title="kept").exists()
    (record,) = [r for r in caplog.records if r.name == "hubbub.broadcast"]
    assert record.exc_info is None, "an outage the layer already reported needs no traceback"
    assert record.getMessage() == (
        "broadcast of 'broadcast_app.headline' to group 'room_lobby' failed: Redis at 127.0.0.1:6399 is unreachable"
    )


@db
@pytest.mark.parametrize(
    "args, kwargs, error, words",
    [
        (("bad group!", "news.flash"), {}, TypeError, "Group name must be"),
        (("news", 5), {}, TypeError, "'type' key holding a string"),
        (("news", "news.flash"), {"type": "other"}, TypeError, "second argument, not as type="),
    ],
)
def test_bad_arguments_fail_at_the_call_even_inside_a_transaction(args, kwargs, error, words):
    with transaction.atomic(), pytest.raises(error, match=words):
        broadcast(*args, **kwargs)


def test_without_a_channel_layer_broadcast_says_so():
    from hubbub.layers import channel_layers

    with override_settings(CHANNEL_LAYERS={}):
        channel_layers.backends.pop("default", None)
        with pytest.raises(InvalidChannelLayerError, match="needs a 'default' channel layer"):
            broadcast("news", "news.flash")


@db
def test_a_group_function_returning_a_bad_name_fails_the_save_loudly(headlines):
    announcer = broadcasts(Headline, group=lambda h: "no spaces allowed")
    try:
        with pytest.raises(TypeError, match="Group name must be"):
            Headline.objects.create(room="x", title="t")
    finally:
        announcer.disconnect()


@pytest.mark.parametrize(
    "model, kwargs, words",
    [
        ("Headline", {"group": "g"}, "takes a model class"),
        (dict, {"group": "g"}, "takes a model class"),
        (Headline, {"group": 5}, "takes a group name or a function"),
        (Headline, {"group": "g", "type": 5}, "takes a message type string"),
    ],
)
def test_broadcasts_refuses_what_it_cannot_use(model, kwargs, words):
    with pytest.raises(TypeError, match=words):
        broadcasts(model, **kwargs)

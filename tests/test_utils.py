"""Helpers in hubbub.utils."""

from __future__ import annotations

import asyncio
import contextlib

from hubbub.consumer import AsyncConsumer
from hubbub.utils import await_many_dispatch, name_that_thing


def plain_function():
    pass


def test_name_that_thing_names_functions_classes_instances_and_methods():
    assert name_that_thing(plain_function) == "tests.test_utils.plain_function"
    assert name_that_thing(AsyncConsumer) == "hubbub.consumer.AsyncConsumer"
    assert name_that_thing(AsyncConsumer()) == "hubbub.consumer.AsyncConsumer"
    assert name_that_thing(AsyncConsumer().dispatch) == "hubbub.consumer.AsyncConsumer.dispatch"
    assert name_that_thing(len) == "len"


async def test_await_many_dispatch_dispatches_from_every_source_until_dispatch_raises():
    a, b = asyncio.Queue(), asyncio.Queue()
    seen = []

    async def dispatch(message):
        seen.append(message)
        if message == "stop":
            raise LookupError("done")

    await a.put("a1")
    await b.put("b1")
    await b.put("stop")
    with contextlib.suppress(LookupError):
        await await_many_dispatch([a.get, b.get], dispatch)
    assert set(seen) == {"a1", "b1", "stop"}

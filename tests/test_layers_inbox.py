"""The inbox both layers share (hubbub.layers.inbox), through the in-memory layer's public API.

The Redis layers' use of it (``Inboxes``) is tested in test_layers_redis_parity.py
and test_layers_redis_protocol.py; here, the same cross-loop guarantees for the
in-memory layer, whose inboxes used to be a copy of the code.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

import pytest

from hubbub.layers import InMemoryChannelLayer
from hubbub.layers.inbox import Inbox

WAIT = 10.0


def _in_thread(body: Callable[[], Any]) -> threading.Thread:
    thread = threading.Thread(target=lambda: asyncio.run(body()))
    thread.start()
    return thread


def test_a_message_sent_to_a_receiver_of_another_threads_loop_reaches_it():
    """A consumer in one thread's loop receives what a sync view's loop (another thread) sends."""
    layer = InMemoryChannelLayer()
    waiting, got = threading.Event(), []

    async def receiver() -> None:
        receiving = asyncio.ensure_future(layer.receive("inbox.a"))
        await asyncio.sleep(0)  # receive() waits now
        waiting.set()
        got.append(await asyncio.wait_for(receiving, WAIT))

    thread = _in_thread(receiver)
    assert waiting.wait(WAIT)
    asyncio.run(layer.send("inbox.a", {"type": "hello"}))
    thread.join(WAIT)
    assert got == [{"type": "hello"}]


def test_a_message_handed_to_a_receiver_that_left_meanwhile_is_kept_first_in_line():
    """Sent from another loop just as the receiver is cancelled: the next receive gets it, in order."""
    layer = InMemoryChannelLayer()
    waiting, sent, got = threading.Event(), threading.Event(), []

    async def receiver() -> None:
        receiving = asyncio.ensure_future(layer.receive("inbox.b"))
        await asyncio.sleep(0)
        waiting.set()
        assert sent.wait(WAIT)  # blocks this loop: the hand-over waits in its queue behind the cancel
        receiving.cancel()
        with pytest.raises(asyncio.CancelledError):
            await receiving
        got.append(await asyncio.wait_for(layer.receive("inbox.b"), WAIT))
        got.append(await asyncio.wait_for(layer.receive("inbox.b"), WAIT))

    thread = _in_thread(receiver)
    assert waiting.wait(WAIT)

    async def send_two() -> None:
        await layer.send("inbox.b", {"type": "first"})
        await layer.send("inbox.b", {"type": "second"})

    asyncio.run(send_two())
    sent.set()
    thread.join(WAIT)
    assert [message["type"] for message in got] == ["first", "second"]


async def test_a_cancelled_receiver_withdraws_and_an_item_handed_to_it_is_returned():
    """Inbox.withdraw: a waiter never served leaves the line; one served as it was cancelled gives its item back."""
    inbox = Inbox("c", deque())
    loop = asyncio.get_running_loop()
    unserved, served = inbox.wait(loop), inbox.wait(loop)
    unserved.cancel()
    assert inbox.withdraw(unserved) is None
    assert list(inbox.waiters) == [served]
    assert inbox.hand("item", loop, lambda inbox, item: None)
    assert inbox.withdraw(served) == "item"
    assert inbox.idle()


async def test_hand_skips_receivers_that_are_gone_and_reports_when_nobody_waits():
    inbox = Inbox("c", deque())
    loop = asyncio.get_running_loop()
    gone, live = inbox.wait(loop), inbox.wait(loop)
    gone.cancel()
    assert inbox.hand("one", loop, lambda inbox, item: None)
    assert live.result() == "one"
    assert not inbox.hand("two", loop, lambda inbox, item: None)


async def test_several_receivers_are_served_in_the_order_they_began_waiting():
    """The first waiter has a slot of its own, the others queue behind it: order holds, whoever leaves."""
    inbox = Inbox("c", deque())
    loop = asyncio.get_running_loop()
    first, middle, last, later = inbox.wait(loop), inbox.wait(loop), inbox.wait(loop), inbox.wait(loop)
    middle.cancel()
    assert inbox.withdraw(middle) is None
    assert inbox.waiters == [first, last, later]
    for item in ("a", "b"):
        assert inbox.hand(item, loop, lambda inbox, item: None)
    assert (first.result(), last.result()) == ("a", "b")
    assert inbox.waiters == [later] and not inbox.idle()
    later.cancel()
    assert inbox.withdraw(later) is None
    assert inbox.waiters == [] and inbox.idle()
    assert not inbox.hand("c", loop, lambda inbox, item: None)

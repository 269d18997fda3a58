"""In-memory group_send under a burst: receivers get to drain, and full channels do not flood the log."""

from __future__ import annotations

import asyncio
import logging

from hubbub.layers import InMemoryChannelLayer
from hubbub.layers.inmemory import logger as layer_logger
from hubbub.ratelog import RateLimitedLog


async def listen(layer: InMemoryChannelLayer, channel: str, got: list, count: int) -> None:
    while len(got) < count:
        got.append((await layer.receive(channel))["n"])


async def test_a_sender_that_never_yields_on_its_own_still_lets_every_member_receive_every_message():
    """300 group_sends back to back (capacity 100): before, each member got 101 and the rest were dropped."""
    layer = InMemoryChannelLayer(capacity=100)
    channels = [await layer.new_channel() for _ in range(50)]
    for channel in channels:
        await layer.group_add("room", channel)
    received = {channel: [] for channel in channels}
    listeners = [asyncio.create_task(listen(layer, channel, received[channel], 300)) for channel in channels]
    await asyncio.sleep(0)  # every listener waits on its channel
    for n in range(300):
        await layer.group_send("room", {"type": "room.message", "n": n})
    await asyncio.wait_for(asyncio.gather(*listeners), 30)
    assert layer.dropped == 0
    assert all(got == list(range(300)) for got in received.values())


async def test_group_send_yields_once_every_half_of_the_smallest_capacity_and_no_more():
    """Broadcast costs one loop turn per capacity/2 sends, whatever the number of members."""
    layer = InMemoryChannelLayer(capacity=100, channel_capacity={"slow*": 20})
    assert layer.yield_every == 10
    assert InMemoryChannelLayer(capacity=100).yield_every == 50
    assert InMemoryChannelLayer(capacity=1).yield_every == 1
    channels = [await layer.new_channel() for _ in range(100)]
    for channel in channels:
        await layer.group_add("room", channel)
    turns: list = []

    async def count_turns() -> None:
        while True:
            turns.append(len(sent))
            await asyncio.sleep(0)

    sent: list = []
    counter = asyncio.create_task(count_turns())
    await asyncio.sleep(0)
    turns.clear()
    for n in range(30):
        await layer.group_send("room", {"type": "room.message", "n": n})
        sent.append(n)
    counter.cancel()
    await asyncio.gather(counter, return_exceptions=True)
    assert turns == [9, 19, 29]  # the loop ran only inside the 10th, 20th and 30th group_send


async def test_full_channel_lines_are_one_per_group_per_interval_with_the_count_left_out(caplog):
    layer = InMemoryChannelLayer(capacity=2)
    now = [0.0]
    layer._full_lines = RateLimitedLog(layer_logger, logging.WARNING, interval=10, clock=lambda: now[0])
    for group in ("a", "b"):
        await layer.group_add(group, await layer.new_channel())
    with caplog.at_level(logging.WARNING, logger="hubbub.layers"):
        for n in range(50):
            await layer.group_send("a", {"type": "m", "n": n})
            await layer.group_send("b", {"type": "m", "n": n})
        now[0] = 11.0
        await layer.group_send("a", {"type": "m", "n": 50})
    lines = [record.getMessage() for record in caplog.records if record.name == "hubbub.layers"]
    assert layer.dropped == 48 * 2 + 1
    assert len(lines) == 3, lines
    assert lines[0].startswith("group_send to 'a': 1 member channel(s) full")
    assert lines[1].startswith("group_send to 'b': 1 member channel(s) full")
    assert lines[2].endswith("(and 47 more like it since the last such line)")

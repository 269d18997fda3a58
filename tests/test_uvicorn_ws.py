"""hubbub.uvicorn_ws without a server: the uvicorn release check and the light queue and flag."""

from __future__ import annotations

import asyncio
import logging

import pytest

from hubbub.uvicorn_ws import WebSocketProtocol, _Flag, _Inbox, check_uvicorn_version
from tests.waiting import eventually


@pytest.mark.parametrize("version", ["0.53.0", "0.54.0", "0.54.9"])
def test_supported_uvicorn_releases_pass(version: str) -> None:
    check_uvicorn_version(version)


@pytest.mark.parametrize("version", ["0.52.4", "0.55.0", "1.0.0", "dev"])
def test_other_uvicorn_releases_are_refused_naming_the_supported_range(version: str) -> None:
    with pytest.raises(ImportError, match=rf"supports uvicorn >=0\.53,<0\.55 .* uvicorn {version} is installed"):
        check_uvicorn_version(version)


def test_every_attribute_uvicorn_sets_is_in_a_slot() -> None:
    """A uvicorn that adds an attribute still works (it lands in the instance dict), but costs memory."""
    import uvicorn
    from uvicorn.server import ServerState

    config = uvicorn.Config(lambda *args: None, ws_per_message_deflate=False)
    config.load()
    loop = asyncio.new_event_loop()
    try:
        protocol = WebSocketProtocol(config, ServerState(), {}, _loop=loop)
    finally:
        loop.close()
    assert protocol.__dict__ == {}


async def test_inbox_hands_items_over_in_order_to_a_waiting_getter() -> None:
    inbox = _Inbox(asyncio.get_running_loop())
    getter = asyncio.ensure_future(inbox.get())
    await asyncio.sleep(0)
    inbox.put_nowait(1)
    inbox.put_nowait(2)
    assert await getter == 1
    assert not inbox.empty()
    assert await inbox.get() == 2
    assert inbox.empty()


async def test_inbox_keeps_an_item_handed_to_a_getter_cancelled_before_it_ran() -> None:
    inbox = _Inbox(asyncio.get_running_loop())
    getter = asyncio.ensure_future(inbox.get())
    await asyncio.sleep(0)
    inbox.put_nowait("kept")
    getter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await getter
    assert await inbox.get() == "kept"


async def test_flag_wait_returns_at_once_when_set_and_wakes_waiters_on_set() -> None:
    flag = _Flag()
    assert flag.is_set() and await flag.wait()
    flag.clear()
    waiter = asyncio.ensure_future(flag.wait())
    await asyncio.sleep(0)
    assert not waiter.done()
    flag.set()
    assert await waiter is True


class Pinged:
    """Stands for a connection in the ping wheel: records its pings, or fails them."""

    def __init__(self, fail: bool = False) -> None:
        self.pings, self.fail = 0, fail
        self.logger = logging.getLogger("tests.pinged")

    def send_keepalive_ping(self) -> None:
        self.pings += 1
        if self.fail:
            raise RuntimeError("this connection's ping failed")


async def test_ping_wheel_pings_due_connections_once_with_one_timer_per_tick(caplog) -> None:
    from hubbub.uvicorn_ws import PING_TICK, _PingWheel

    loop = asyncio.get_running_loop()
    wheel = _PingWheel(loop)
    failing, pinged, left = Pinged(fail=True), Pinged(), Pinged()
    keys = {wheel.add(p, 0.01) for p in (failing, pinged, left)}  # type: ignore[arg-type]
    assert len(keys) == 1 and next(iter(keys)) % PING_TICK == 0
    wheel.discard(left, keys.pop())  # type: ignore[arg-type]
    await eventually(lambda: pinged.pings == 1)
    assert (failing.pings, pinged.pings, left.pings) == (1, 1, 0)
    assert "Keepalive ping failed" in caplog.text


def fresh(text: str) -> bytes:
    """New bytes each call (a literal would be one constant object)."""
    return bytes(bytearray(text, "ascii"))


def test_repeated_header_pairs_and_names_are_shared_and_values_unchanged() -> None:
    from hubbub.uvicorn_ws import share_headers

    def handshake(key: bytes) -> list[tuple[bytes, bytes]]:
        # every connection's headers are its own objects before sharing
        return [(fresh("host"), fresh("example.com")), (fresh("sec-websocket-key"), key)]

    first, second = handshake(fresh("key-1")), handshake(fresh("key-2"))
    assert first[0] is not second[0] and first[0][0] is not second[0][0]
    share_headers(first)
    share_headers(second)
    assert first == handshake(b"key-1") and second == handshake(b"key-2")
    assert first[0] is second[0]  # the whole (host, value) pair
    assert first[1][0] is second[1][0] and first[1][1] is not second[1][1]  # the key's name only


def test_header_sharing_is_bounded(monkeypatch) -> None:
    from hubbub import uvicorn_ws

    monkeypatch.setattr(uvicorn_ws, "_shared_headers", {})
    monkeypatch.setattr(uvicorn_ws, "SHARED_MAX_ENTRIES", 2)
    for n in range(5):
        uvicorn_ws.share_headers([(b"user-agent", b"agent %d" % n)])
    assert len(uvicorn_ws._shared_headers) == 2

"""hubbub.uvicorn_ws without a server: the uvicorn release check and the light queue and flag."""

from __future__ import annotations

import asyncio

import pytest

from hubbub.uvicorn_ws import WebSocketProtocol, _Flag, _Inbox, check_uvicorn_version


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

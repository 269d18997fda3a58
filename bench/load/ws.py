"""Opening many WebSocket connections quickly, with a bounded number of handshakes in flight."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from picows import WSListener, WSTransport, ws_connect

#: Handshakes in flight at once: enough to keep a server busy, few enough not to
#: overflow its accept backlog or time out waiting behind each other.
CONCURRENT_HANDSHAKES = 64
#: Seconds one handshake may take. Channels at 10,000 connections answers in well
#: under a second with 64 waiting; a server that never accepts must not stall a run.
HANDSHAKE_TIMEOUT = 15


async def connect_many(
    ports: Sequence[int], path: str, count: int, factory: Callable[[], WSListener], start: int = 0
) -> tuple[list[WSTransport], int]:
    """Open ``count`` connections to ``path``, spread over ``ports`` round-robin.

    Returns the transports that connected and the number of attempts that failed.
    ``start`` offsets the round-robin, so connections added in batches stay even.
    Once a full round of handshakes has failed and failures outnumber successes,
    the server is taken to be broken and the remaining attempts are skipped (as failed).
    """
    gate = asyncio.Semaphore(CONCURRENT_HANDSHAKES)
    failed = connected = 0

    async def one(index: int) -> WSTransport | None:
        nonlocal failed, connected
        url = f"ws://127.0.0.1:{ports[(start + index) % len(ports)]}/{path}"
        async with gate:
            if failed >= CONCURRENT_HANDSHAKES and failed > connected:
                failed += 1
                return None
            try:
                transport, _ = await ws_connect(factory, url, websocket_handshake_timeout=HANDSHAKE_TIMEOUT)
            except Exception:  # refused, reset or timed out: counted, not fatal
                failed += 1
                return None
            connected += 1
            return transport

    results = await asyncio.gather(*(one(i) for i in range(count)))
    return [t for t in results if t is not None], failed

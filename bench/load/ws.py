"""Opening many WebSocket connections quickly, with a bounded number of handshakes in flight."""

from __future__ import annotations

import asyncio
from typing import Callable, List, Sequence, Tuple

from picows import WSListener, WSTransport, ws_connect

#: Handshakes in flight at once: enough to keep a server busy, few enough not to
#: overflow its accept backlog or time out waiting behind each other.
CONCURRENT_HANDSHAKES = 64


async def connect_many(
    ports: Sequence[int], path: str, count: int, factory: Callable[[], WSListener], start: int = 0
) -> Tuple[List[WSTransport], int]:
    """Open ``count`` connections to ``path``, spread over ``ports`` round-robin.

    Returns the transports that connected and the number of attempts that failed.
    ``start`` offsets the round-robin, so connections added in batches stay even.
    """
    gate = asyncio.Semaphore(CONCURRENT_HANDSHAKES)
    failed = 0

    async def one(index: int) -> WSTransport | None:
        nonlocal failed
        url = f"ws://127.0.0.1:{ports[(start + index) % len(ports)]}/{path}"
        async with gate:
            try:
                transport, _ = await ws_connect(factory, url, websocket_handshake_timeout=60)
                return transport
            except Exception:  # refused, reset or timed out: counted, not fatal
                failed += 1
                return None

    results = await asyncio.gather(*(one(i) for i in range(count)))
    return [t for t in results if t is not None], failed

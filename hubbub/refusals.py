"""One log line per WebSocket frame refused, whoever refused it, and never a flood of them.

A frame can be refused by hubbub (binary or bad JSON to a JSON consumer, a JSON frame
past its size or depth bound, a client over its inbound rate limit) or by the server
before the application sees it (uvicorn closes with 1009 a frame over
``--ws-max-size``; the consumer only gets the ``websocket.disconnect``). Each refusal
is one WARNING line on the ``hubbub.consumer`` logger naming the close code, the
reason, the path and the client, with no traceback.

A client can repeat a bad frame as fast as it can reconnect, so the lines are
rate-limited (``hubbub.ratelog.RateLimitedLog``): at most one per refuser, close code
and consumer class every ``INTERVAL`` seconds, the next one saying how many were left out.
The key leaves out the path and the client on purpose: both are chosen by the client,
and a key it can vary would let it choose how many lines it gets.
"""

from __future__ import annotations

import logging
from typing import Any

from .ratelog import RateLimitedLog
from .typing import Scope

__all__ = ["INTERVAL", "log_refused_frame"]

logger = logging.getLogger("hubbub.consumer")

#: Seconds between two lines for the same refuser, close code and consumer class.
INTERVAL = 10.0

_lines = RateLimitedLog(logger, logging.WARNING, interval=INTERVAL)


def _client(scope: Scope) -> str:
    client = scope.get("client")
    if not client:
        return "unknown"
    host, port = client[0], client[1] if len(client) > 1 else None
    return f"{host}:{port}" if port is not None else str(host)


def log_refused_frame(consumer: Any, code: int | str, reason: str, refused_by: str = "hubbub") -> bool:
    """Log that ``consumer``'s client had a frame refused; False if rate-limited away.

    ``code`` is the close code sent (an int) or, where the connection stays open, the
    error code of the reply (a string, as the pub/sub protocol's ``bad_json``).
    """
    scope: Scope = getattr(consumer, "scope", None) or {}
    name = type(consumer).__name__
    answer = f"code {code}" if isinstance(code, int) else f"error {code}"
    return _lines.log(
        (refused_by, code, name), "%s refused a WebSocket frame: %s (%s), path %s, client %s, consumer %s",
        refused_by, answer, reason[:200], scope.get("path", "?"), _client(scope), name,
    )

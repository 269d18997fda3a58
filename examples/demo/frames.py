"""What every demo consumer does with a frame before acting on it: size, emptiness, JSON.

The site refuses frames over ``MAX_MESSAGE_BYTES`` (4 KiB) with a message instead of acting
on them. For comparison, uvicorn drops connections whose frames pass ``--ws-max-size``
(16 MiB by default) and nginx has no WebSocket frame limit of its own; 4 KiB is plenty for
chat lines and order changes while keeping a flood of large frames cheap to turn away.
JSON is also refused when nested deeper than ``MAX_JSON_DEPTH`` (hubbub's bound for its
JSON consumers: see hubbub.jsonbounds), or when decoding fails in any way: a 4 KB frame
of ``[`` alone would make ``json.loads`` raise ``RecursionError``, not ``ValueError``.
Each refused frame is logged, one rate-limited line (see hubbub.refusals).

Each consumer of the site also limits what one client may send (``InboundLimits``): a
person typing or clicking sends a few frames a second, a script flooding a room sends
thousands; past the limit the socket is closed with 1008 (policy violation).
"""

from __future__ import annotations

import json
from typing import Any, Dict, Optional

from hubbub.jsonbounds import MAX_JSON_DEPTH, nesting_exceeds
from hubbub.refusals import log_refused_frame

MAX_MESSAGE_BYTES = 4096



class BadFrame(ValueError):
    """A frame the demo will not act on; ``str(exc)`` is told to the client."""


def read_text(text_data: Optional[str], bytes_data: Optional[bytes]) -> str:
    """The frame's text, or ``BadFrame`` if it is binary, blank or over the size limit."""
    if text_data is None:
        raise BadFrame("binary frames are not used here; send text")
    if not text_data.strip():
        raise BadFrame("empty message")
    if len(text_data.encode("utf-8")) > MAX_MESSAGE_BYTES:
        raise BadFrame(f"message over {MAX_MESSAGE_BYTES} bytes")
    return text_data


def read_json(text_data: Optional[str], bytes_data: Optional[bytes]) -> Any:
    """The frame decoded from JSON, or ``BadFrame`` (see ``read_text``, plus non-JSON text)."""
    text = read_text(text_data, bytes_data)
    if nesting_exceeds(text, MAX_JSON_DEPTH):
        raise BadFrame(f"JSON nested more than {MAX_JSON_DEPTH} deep")
    try:
        return json.loads(text)
    except Exception:  # whatever the decoder raises, the frame is what was wrong
        raise BadFrame("not JSON")


def text_field(content: Any, key: str, limit: int) -> str:
    """``content[key]`` as a stripped, non-empty string of at most ``limit`` characters."""
    value = content.get(key) if isinstance(content, dict) else None
    if not isinstance(value, str):
        raise BadFrame(f'send a JSON object with a "{key}" string')
    value = value.strip()
    if not value:
        raise BadFrame(f'"{key}" is empty')
    if len(value) > limit:
        raise BadFrame(f'"{key}" is longer than {limit} characters')
    return value


class InboundLimits:
    """Put first among a demo consumer's bases: hubbub's per-connection inbound rate limit.

    A burst of up to 10 frames, then 10 a second on average (a person chatting sends far
    fewer), and 16 KiB a second (four frames of the largest size the site reads).
    """

    max_messages_per_second: Optional[float] = 10
    max_bytes_per_second: Optional[float] = 4 * MAX_MESSAGE_BYTES


class GuardedJsonMixin:
    """For ``AsyncJsonWebsocketConsumer``: answer a bad frame with an error instead of closing."""

    async def receive(self, text_data: Optional[str] = None, bytes_data: Optional[bytes] = None, **kwargs: Any) -> None:
        try:
            content = read_json(text_data, bytes_data)
        except BadFrame as exc:
            log_refused_frame(self, "bad_frame", str(exc))
            await self.send_json(self.error_reply(str(exc)))  # type: ignore[attr-defined]
            return
        await self.receive_json(content, **kwargs)  # type: ignore[attr-defined]

    def error_reply(self, message: str) -> Dict[str, Any]:
        """The JSON sent back for a frame that was refused."""
        return {"error": message}

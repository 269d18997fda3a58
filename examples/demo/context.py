"""Template context shared by every page of the demo."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from .frames import MAX_MESSAGE_BYTES
from .names import MAX_NAME_LENGTH


def limits(request: HttpRequest) -> dict[str, Any]:
    """The limits the pages state and their inputs enforce."""
    return {"max_message_bytes": MAX_MESSAGE_BYTES, "max_name_length": MAX_NAME_LENGTH}

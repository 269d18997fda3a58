"""The import switch: the same names, taken from hubbub or from Channels."""

from __future__ import annotations

from typing import Any

from django.conf import settings

forward_text: Any = None  # hubbub's forwarding handler (hubbub.fastlane); Channels has none

if settings.FRAMEWORK == "hubbub":
    from hubbub.fastlane import forward_text
    from hubbub.generic.websocket import AsyncWebsocketConsumer
    from hubbub.layers import get_channel_layer
    from hubbub.routing import ProtocolTypeRouter, URLRouter
else:
    from channels.generic.websocket import AsyncWebsocketConsumer  # type: ignore[no-redef]
    from channels.layers import get_channel_layer  # type: ignore[no-redef]
    from channels.routing import ProtocolTypeRouter, URLRouter  # type: ignore[no-redef]

__all__ = ["AsyncWebsocketConsumer", "ProtocolTypeRouter", "URLRouter", "forward_text", "get_channel_layer"]

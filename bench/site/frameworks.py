"""The import switch: the same names, taken from hubbub or from Channels."""

from __future__ import annotations

from django.conf import settings

if settings.FRAMEWORK == "hubbub":
    from hubbub.generic.websocket import AsyncWebsocketConsumer
    from hubbub.layers import get_channel_layer
    from hubbub.routing import ProtocolTypeRouter, URLRouter
else:
    from channels.generic.websocket import AsyncWebsocketConsumer  # type: ignore[no-redef]
    from channels.layers import get_channel_layer  # type: ignore[no-redef]
    from channels.routing import ProtocolTypeRouter, URLRouter  # type: ignore[no-redef]

__all__ = ["AsyncWebsocketConsumer", "ProtocolTypeRouter", "URLRouter", "get_channel_layer"]

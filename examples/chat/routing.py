"""WebSocket routes of the chat app; the room consumer reads the session for the user's name.

The room route reads the session cookie, so it checks the Origin: without that, any site's
page could open it with the visitor's cookie and chat under their name.
"""

from django.urls import path, re_path

from hubbub.auth import AuthMiddlewareStack
from hubbub.security.websocket import AllowedHostsOriginValidator

from . import consumers

websocket_urlpatterns = [
    path("ws/echo/", consumers.EchoConsumer.as_asgi()),
    re_path(
        r"^ws/chat/(?P<room_name>[^/]*)/$",
        AllowedHostsOriginValidator(AuthMiddlewareStack(consumers.ChatConsumer.as_asgi())),
    ),
]

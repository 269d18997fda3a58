"""WebSocket routes of the chat app; the room consumer reads the session for the user's name."""

from django.urls import path, re_path

from hubbub.auth import AuthMiddlewareStack

from . import consumers

websocket_urlpatterns = [
    path("ws/echo/", consumers.EchoConsumer.as_asgi()),
    re_path(r"^ws/chat/(?P<room_name>[^/]*)/$", AuthMiddlewareStack(consumers.ChatConsumer.as_asgi())),
]

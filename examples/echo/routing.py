from django.urls import path

from . import consumers

websocket_urlpatterns = [
    path("chat/socket/", consumers.StampedEchoConsumer.as_asgi()),
]

from django.urls import path

from hubbub.auth import AuthMiddlewareStack
from hubbub.security.websocket import AllowedHostsOriginValidator

from . import consumers

websocket_urlpatterns = [
    path(
        "ws/notifications/",
        AllowedHostsOriginValidator(AuthMiddlewareStack(consumers.NotificationConsumer.as_asgi())),
    ),
]

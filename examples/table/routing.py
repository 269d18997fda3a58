"""WebSocket routes of the table app; the diner's name comes from the session, so the Origin is checked."""

from django.urls import path, re_path

from hubbub.auth import AuthMiddlewareStack
from hubbub.security.websocket import AllowedHostsOriginValidator

from . import consumers

websocket_urlpatterns = [
    path("ws/table/<slug:table_id>/", AllowedHostsOriginValidator(AuthMiddlewareStack(consumers.TableConsumer.as_asgi()))),
    # Any other id reaches the consumer too, which refuses it with a message.
    re_path(r"^ws/table/(?P<table_id>[^/]*)/$", consumers.TableConsumer.as_asgi()),
]

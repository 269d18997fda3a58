"""ASGI entry point: Django for HTTP, each demo app's consumers for WebSocket.

Every route whose consumer reads the session cookie (chat rooms, tables, notifications)
is wrapped in ``AllowedHostsOriginValidator`` in its app's routing.py; the others read
no cookie (the echo and API consumers) or take a token (the dashboard).
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo.settings")
django_asgi_app = get_asgi_application()  # set Django up before importing consumers

from hubbub.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from api.routing import websocket_urlpatterns as api_routes  # noqa: E402
from chat.routing import websocket_urlpatterns as chat_routes  # noqa: E402
from dashboard.routing import websocket_urlpatterns as dashboard_routes  # noqa: E402
from echo.routing import websocket_urlpatterns as echo_routes  # noqa: E402
from notifications.routing import websocket_urlpatterns as notification_routes  # noqa: E402
from table.routing import websocket_urlpatterns as table_routes  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": URLRouter(
            chat_routes + echo_routes + dashboard_routes + table_routes + notification_routes + api_routes
        ),
    }
)

"""The ASGI application: Django for HTTP, the two consumers for WebSockets."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.site.settings")

from django.core.asgi import get_asgi_application  # noqa: E402

django_app = get_asgi_application()

from django.urls import path  # noqa: E402

from .consumers import EchoConsumer, GroupConsumer  # noqa: E402
from .frameworks import ProtocolTypeRouter, URLRouter  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_app,
        "websocket": URLRouter(
            [
                path("ws/echo", EchoConsumer.as_asgi()),
                path("ws/group", GroupConsumer.as_asgi()),
            ]
        ),
    }
)

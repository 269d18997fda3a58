"""The ASGI side of the deployment tests' site: Django for HTTP, two consumers under /ws/."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.deploy_site.settings")
django_asgi_app = get_asgi_application()

from django.urls import path  # noqa: E402

from hubbub.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from .consumers import Push, WhereAmI  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": URLRouter(
            [
                path("ws/whereami/", WhereAmI.as_asgi()),
                path("ws/push/", Push.as_asgi()),
            ]
        ),
    }
)

"""The garbage collection test site: ``GET /metrics/`` (hubbub's metrics), ``ws /ws/echo/``."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.gc_site.settings")

from django.core.asgi import get_asgi_application  # noqa: E402

django_application = get_asgi_application()  # django.setup(): hubbub's ready() installs HUBBUB_GC

from django.urls import path  # noqa: E402

from hubbub.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from hubbub.metrics import metrics_view  # noqa: E402
from hubbub.routing import ProtocolTypeRouter, URLRouter  # noqa: E402


class Echo(AsyncWebsocketConsumer):
    async def receive(self, text_data=None, bytes_data=None):
        await self.send(text_data=text_data, bytes_data=bytes_data)


urlpatterns = [path("metrics/", metrics_view)]

application = ProtocolTypeRouter(
    {"http": django_application, "websocket": URLRouter([path("ws/echo/", Echo.as_asgi())])}
)

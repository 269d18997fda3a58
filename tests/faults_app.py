"""A site on a Redis layer for the outage tests, run by uvicorn in a process of its own.

The layer comes from the environment: ``HUBBUB_FAULTS_BACKEND`` (a layer class path)
and ``HUBBUB_FAULTS_CONFIG`` (its CONFIG as JSON). Routes:

* ``ws /ws/room/``: joins the group ``room``; a text frame is sent to the group, and
  group messages come back to every member as text frames.
* ``POST /send/``: a sync Django view doing ``async_to_sync(group_send)``; 202 when
  the message went to Redis, 503 (and the reason) when the layer was unavailable.
* ``GET /metrics/``: hubbub's metrics.
"""

from __future__ import annotations

import json
import os

import django
from django.conf import settings

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="hubbub-faults-tests",
        ALLOWED_HOSTS=["*"],
        INSTALLED_APPS=["hubbub.apps.HubbubConfig"],
        ROOT_URLCONF=__name__,
        MIDDLEWARE=[],
        CHANNEL_LAYERS={
            "default": {
                "BACKEND": os.environ["HUBBUB_FAULTS_BACKEND"],
                "CONFIG": json.loads(os.environ["HUBBUB_FAULTS_CONFIG"]),
            }
        },
    )
    django.setup()

from asgiref.sync import async_to_sync  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402
from django.http import HttpResponse  # noqa: E402
from django.urls import path  # noqa: E402
from django.views.decorators.csrf import csrf_exempt  # noqa: E402

from hubbub.exceptions import ChannelLayerUnavailable  # noqa: E402
from hubbub.fastlane import forward_text  # noqa: E402
from hubbub.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from hubbub.layers import get_channel_layer  # noqa: E402
from hubbub.metrics import metrics_view  # noqa: E402
from hubbub.routing import ProtocolTypeRouter, URLRouter  # noqa: E402


class Room(AsyncWebsocketConsumer):
    groups = ["room"]

    async def receive(self, text_data=None, bytes_data=None):
        await self.channel_layer.group_send("room", {"type": "room.message", "text": text_data})

    room_message = forward_text("text")


@csrf_exempt
def send_view(request):
    try:
        async_to_sync(get_channel_layer().group_send)("room", {"type": "room.message", "text": request.body.decode()})
    except ChannelLayerUnavailable as exc:
        return HttpResponse(f"unavailable: {exc}", status=503)
    return HttpResponse("sent", status=202)


urlpatterns = [path("send/", send_view), path("metrics/", metrics_view)]

application = ProtocolTypeRouter(
    {
        "http": get_asgi_application(),
        "websocket": URLRouter([path("ws/room/", Room.as_asgi())]),
    }
)

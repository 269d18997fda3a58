"""A flood of group messages, published in-process, for test_backpressure.py.

On the in-memory layer, or on Redis when ``FLOOD_REDIS`` holds its URL (keys under
``FLOOD_REDIS_PREFIX``).
"""

import asyncio
import json
import os
import time
from urllib.parse import parse_qs

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
django.setup()

from django.urls import path  # noqa: E402

from hubbub.fastlane import forward_text  # noqa: E402
from hubbub.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from hubbub.layers import channel_layers, get_channel_layer  # noqa: E402
from hubbub.metrics import metrics_app  # noqa: E402
from hubbub.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

if os.environ.get("FLOOD_REDIS"):
    from hubbub.layers.redis import RedisChannelLayer

    channel_layers.set(
        "default", RedisChannelLayer(hosts=[os.environ["FLOOD_REDIS"]], prefix=os.environ["FLOOD_REDIS_PREFIX"])
    )


class Flooded(AsyncWebsocketConsumer):
    groups = ["flood"]

    flood_message = forward_text("text")


async def publish(scope, receive, send):
    """``/publish/?n=..&size=..&rate=..``: n messages of size characters to the group, at rate per second."""
    query = {key: int(values[0]) for key, values in parse_qs(scope["query_string"].decode()).items()}
    layer = get_channel_layer()
    filler = "x" * query["size"]
    batch = 50  # yield this often: each member's channel (capacity 100) is drained in between
    started = time.monotonic()
    for first in range(0, query["n"], batch):
        # A batch at once: the Redis layer pipelines them, in order, in one round trip.
        await asyncio.gather(
            *(
                layer.group_send("flood", {"type": "flood.message", "text": f"{n} {filler}"})
                for n in range(first, min(first + batch, query["n"]))
            )
        )
        ahead = started + (first + batch) / query["rate"] - time.monotonic()
        await asyncio.sleep(max(ahead, 0))
    body = json.dumps({"seconds": time.monotonic() - started}).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


application = ProtocolTypeRouter(
    {
        "http": URLRouter([path("publish/", publish), path("metrics/", metrics_app)]),
        "websocket": URLRouter(
            [
                path("ws/flood/close/", Flooded.as_asgi()),
                path("ws/flood/drop/", Flooded.as_asgi(outbox_policy="drop_oldest")),
            ]
        ),
    }
)

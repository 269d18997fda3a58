"""Publish endpoints: the request body goes to group ``bench`` as one group message."""

from __future__ import annotations

from asgiref.sync import async_to_sync
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from .consumers import GROUP
from .frameworks import get_channel_layer


def _event(request: HttpRequest) -> dict:
    return {"type": "bench.message", "text": request.body.decode()}


@csrf_exempt
async def publish_async(request: HttpRequest) -> HttpResponse:
    """An async view awaiting ``group_send``."""
    await get_channel_layer().group_send(GROUP, _event(request))
    return HttpResponse(b"ok", content_type="text/plain")


@csrf_exempt
def publish_sync(request: HttpRequest) -> HttpResponse:
    """A sync view calling ``group_send`` through ``async_to_sync``, as Celery tasks and scripts do."""
    async_to_sync(get_channel_layer().group_send)(GROUP, _event(request))
    return HttpResponse(b"ok", content_type="text/plain")

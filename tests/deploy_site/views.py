"""Views of the deployment tests' site: where a request came from, and a push to the sockets."""

from __future__ import annotations

from asgiref.sync import async_to_sync
from django.http import HttpRequest, HttpResponse, JsonResponse

from hubbub.layers import get_channel_layer

#: The group every /ws/push/ socket joins.
PUSH_GROUP = "deploy-push"


def where_am_i(request: HttpRequest) -> JsonResponse:
    """The client address and scheme Django sees (``REMOTE_ADDR``, ``request.scheme``), and who served it."""
    server = "wsgi" if "wsgi.version" in request.META else "asgi"
    return JsonResponse({"client": request.META.get("REMOTE_ADDR"), "scheme": request.scheme, "server": server})


def push(request: HttpRequest) -> HttpResponse:
    """Send the ``text`` query parameter to every /ws/push/ socket, as a view in any process would."""
    text = request.GET.get("text", "")
    async_to_sync(get_channel_layer().group_send)(PUSH_GROUP, {"type": "push.text", "text": text})
    server = "wsgi" if "wsgi.version" in request.META else "asgi"
    return JsonResponse({"pushed": text, "server": server})

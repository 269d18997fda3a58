"""The integration tests' ASGI application: Django, authenticated sockets, token sockets, a worker channel."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.django_app.settings")
django_asgi_app = get_asgi_application()

from django.contrib.auth import get_user_model  # noqa: E402
from django.core import signing  # noqa: E402
from django.urls import path  # noqa: E402

from hubbub.auth import AuthMiddlewareStack, TokenAuthMiddleware  # noqa: E402
from hubbub.routing import ChannelNameRouter, ProtocolTypeRouter, URLRouter  # noqa: E402
from hubbub.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from tests.asgi_app import Echo  # noqa: E402

from .consumers import Account, MembersOnly, SessionCounter, ThumbnailConsumer, WhoAmI  # noqa: E402

TOKEN_SALT = "hubbub-tests-token"


def user_for_signed_token(token):
    """A token made with signing.dumps(user.pk, salt=TOKEN_SALT), valid for an hour."""
    try:
        user_id = signing.loads(token, salt=TOKEN_SALT, max_age=3600)
    except signing.BadSignature:
        return None
    return get_user_model().objects.filter(pk=user_id, is_active=True).first()


def browser_only(app):
    """Cookie-authenticated routes check the Origin (cross-site WebSocket hijacking)."""
    return AllowedHostsOriginValidator(AuthMiddlewareStack(app))


application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": URLRouter(
            [
                # Token clients (scripts, apps) send no Origin; the token is the credential.
                path(
                    "ws/token/whoami/",
                    AuthMiddlewareStack(TokenAuthMiddleware(WhoAmI.as_asgi(), user_for_signed_token)),
                ),
                path("ws/whoami/", browser_only(WhoAmI.as_asgi())),
                path("ws/members/", browser_only(MembersOnly.as_asgi())),
                path("ws/counter/", browser_only(SessionCounter.as_asgi())),
                path("ws/account/", browser_only(Account.as_asgi())),
                path("ws/echo/", browser_only(Echo.as_asgi())),
            ]
        ),
        "channel": ChannelNameRouter({"thumbnails": ThumbnailConsumer.as_asgi()}),
    }
)

from django.urls import path, re_path

from hubbub.auth import AuthMiddlewareStack

from . import consumers

websocket_urlpatterns = [
    path("ws/table/<slug:table_id>/", AuthMiddlewareStack(consumers.TableConsumer.as_asgi())),
    # Any other id reaches the consumer too, which refuses it with a message.
    re_path(r"^ws/table/(?P<table_id>[^/]*)/$", consumers.TableConsumer.as_asgi()),
]

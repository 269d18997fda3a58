"""HTTP routes: the two publish endpoints."""

from django.urls import path

from .views import publish_async, publish_sync

urlpatterns = [
    path("publish/async", publish_async),
    path("publish/sync", publish_sync),
]

"""HTTP routes: the two publish endpoints, and hubbub's metrics (its GC pauses) when on hubbub."""

from django.conf import settings
from django.urls import path

from .views import publish_async, publish_sync

urlpatterns = [
    path("publish/async", publish_async),
    path("publish/sync", publish_sync),
]

if settings.FRAMEWORK == "hubbub":
    from hubbub.metrics import metrics_view

    urlpatterns.append(path("metrics", metrics_view))

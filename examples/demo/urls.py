"""Every page of the demo: the landing page, then each app's own URLs."""

from django.urls import include, path

from . import views

urlpatterns = [
    path("", views.index, name="index"),
    path("", include("chat.urls")),
    path("", include("echo.urls")),
    path("", include("dashboard.urls")),
    path("", include("table.urls")),
    path("", include("api.urls")),
    path("", include("notifications.urls")),
]

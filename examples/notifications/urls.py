from django.contrib.auth import views as auth_views
from django.urls import path

from . import views

urlpatterns = [
    path("notifications/", views.board, name="notifications"),
    path("accounts/login/", auth_views.LoginView.as_view(extra_context=views.DEMO_LOGINS), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
]

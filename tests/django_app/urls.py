from django.contrib.auth import views as auth_views
from django.urls import path

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("thumbnail/<str:name>/", views.make_thumbnail, name="make-thumbnail"),
    path("thumbnails/", views.thumbnails, name="thumbnails"),
    path("echo/", views.echo_page, name="echo-page"),
]

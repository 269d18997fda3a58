from django.urls import path

from . import views

urlpatterns = [
    path("chat/", views.lobby, name="lobby"),
    path("chat/<str:room_name>/", views.room, name="room"),
]

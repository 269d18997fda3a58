from django.urls import path

from . import views

urlpatterns = [
    path("whereami/", views.where_am_i),
    path("push/", views.push),
]

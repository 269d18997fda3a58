from django.urls import path

from . import views

urlpatterns = [
    path("table/", views.pick_table, name="pick_table"),
    path("table/<str:table_id>/", views.table, name="table"),
]

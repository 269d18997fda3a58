from django.urls import path

from . import views

urlpatterns = [
    path("dashboard/", views.dashboard, name="dashboard"),
    path("dashboard/patients/", views.add_patient, name="add_patient"),
    path("dashboard/visits/", views.start_visit, name="start_visit"),
    path("dashboard/visits/<int:visit_id>/end/", views.end_visit, name="end_visit"),
]

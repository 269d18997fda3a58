"""The dashboard page, and the POST views that change data and push it to every open tab."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from .data import push_to_dashboards
from .models import Patient, Visit


def dashboard(request: HttpRequest) -> HttpResponse:
    """The page; its script fetches the data over the socket and keeps it current."""
    return render(request, "dashboard/dashboard.html", {"token": settings.DASHBOARD_TOKEN})


def _field(request: HttpRequest, key: str, limit: int) -> str:
    """A posted form field, stripped and cut to ``limit`` characters."""
    return request.POST.get(key, "").strip()[:limit]


def _changed() -> JsonResponse:
    """Push to the dashboards once the current transaction commits, and answer OK."""
    transaction.on_commit(push_to_dashboards)
    return JsonResponse({"ok": True})


@require_POST
def add_patient(request: HttpRequest) -> JsonResponse:
    """Add a patient (form field ``name``)."""
    name = _field(request, "name", 80)
    if not name:
        return JsonResponse({"ok": False, "error": "a patient needs a name"}, status=400)
    with transaction.atomic():
        Patient.objects.create(name=name)
        return _changed()


@require_POST
def start_visit(request: HttpRequest) -> JsonResponse:
    """Start a visit (form fields ``patient``, an id, and ``reason``)."""
    reason = _field(request, "reason", 120)
    if not reason:
        return JsonResponse({"ok": False, "error": "a visit needs a reason"}, status=400)
    patient_id = _field(request, "patient", 20)
    if not patient_id.isdigit():
        return JsonResponse({"ok": False, "error": "pick a patient"}, status=400)
    with transaction.atomic():
        patient = get_object_or_404(Patient, pk=int(patient_id))
        Visit.objects.create(patient=patient, reason=reason)
        return _changed()


@require_POST
def end_visit(request: HttpRequest, visit_id: int) -> JsonResponse:
    """End an active visit."""
    with transaction.atomic():
        visit = get_object_or_404(Visit.objects.select_for_update(), pk=visit_id, ended__isnull=True)
        visit.ended = timezone.now()
        visit.save(update_fields=["ended"])
        return _changed()

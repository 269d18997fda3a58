"""The two data sets the dashboard shows, as JSON-ready lists, and pushing them to every tab."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from asgiref.sync import async_to_sync
from django.db.models import Count, Q

from hubbub.layers import get_channel_layer

from .models import Patient, Visit

#: Every dashboard socket is in this group.
DASHBOARD_GROUP = "dashboard"

#: The dashboard shows at most this many rows of each kind (newest first).
MAX_ROWS = 50


def all_patient_page_data() -> list[dict[str, Any]]:
    """Patients, newest first, with how many visits each has had and has open."""
    patients = Patient.objects.annotate(
        visits_total=Count("visits"), visits_active=Count("visits", filter=Q(visits__ended__isnull=True))
    ).order_by("-id")[:MAX_ROWS]
    return [{"id": p.id, "name": p.name, "visits": p.visits_total, "active": p.visits_active} for p in patients]


def all_active_visit_data() -> list[dict[str, Any]]:
    """Visits that have not ended, newest first."""
    visits = Visit.objects.filter(ended__isnull=True).select_related("patient").order_by("-id")[:MAX_ROWS]
    return [
        {"id": v.id, "patient": v.patient.name, "reason": v.reason, "started": v.started.isoformat()} for v in visits
    ]


#: What a socket may ask for, by its ``type``.
DATA_SETS: dict[str, Callable[[], list[dict[str, Any]]]] = {
    "all_patient_page_data": all_patient_page_data,
    "all_active_visit_data": all_active_visit_data,
}


def push_to_dashboards() -> None:
    """Send both data sets to every connected dashboard (call once the change is committed)."""
    event = {"type": "dashboard.push", "sets": {kind: build() for kind, build in DATA_SETS.items()}}
    async_to_sync(get_channel_layer().group_send)(DASHBOARD_GROUP, event)

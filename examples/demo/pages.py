"""What the room and table pages share: sending a visitor to the clean form of a name."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect

from .names import clean_name


def go_to_clean_name(request: HttpRequest, raw: str, page: str, kwarg: str, picker: str, what: str) -> HttpResponse:
    """Redirect to URL ``page`` with ``kwarg`` set to ``raw`` cleaned, or back to ``picker`` with a
    message when nothing of ``raw`` is left (``what`` names it in the message, e.g. "room name")."""
    cleaned = clean_name(raw)
    if not cleaned:
        messages.error(request, f"{raw[:60]!r} has no letters or digits to make a {what} from.")
        return redirect(picker)
    return redirect(page, **{kwarg: cleaned})

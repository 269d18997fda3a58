from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def console(request: HttpRequest) -> HttpResponse:
    """A page for sending JSON requests to ``ws/`` and reading the answers."""
    return render(request, "api/console.html")

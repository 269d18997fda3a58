"""The lobby and the room page."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from demo.names import clean_name, ensure_visitor_name
from demo.pages import go_to_clean_name

from .consumers import MAX_CHAT_CHARS


def lobby(request: HttpRequest) -> HttpResponse:
    """The room picker; ``?room=`` (the form's submission) goes to that room."""
    if "room" in request.GET:
        return go_to_clean_name(request, request.GET["room"], "room", "room_name", "lobby", "room name")
    return render(request, "chat/lobby.html", {"name": ensure_visitor_name(request)})


def room(request: HttpRequest, room_name: str) -> HttpResponse:
    """A room's page; a name that is not a clean room name is redirected to its clean form."""
    if clean_name(room_name) != room_name:
        return go_to_clean_name(request, room_name, "room", "room_name", "lobby", "room name")
    context = {"room_name": room_name, "name": ensure_visitor_name(request), "max_chat_chars": MAX_CHAT_CHARS}
    return render(request, "chat/room.html", context)

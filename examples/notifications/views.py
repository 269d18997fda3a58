"""The notice board page (logged-in users only)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from .accounts import DEMO_PASSWORD, DEMO_USERS
from .comments import MAX_COMMENT_CHARS, recent_comments

#: Shown on the login page: the demo's accounts (demo only, never in a real site).
DEMO_LOGINS = {"demo_users": DEMO_USERS, "demo_password": DEMO_PASSWORD}


@login_required
def board(request: HttpRequest) -> HttpResponse:
    context = {"comments": recent_comments(), "max_comment_chars": MAX_COMMENT_CHARS}
    return render(request, "notifications/board.html", context)

"""Reading and writing comments (synchronous ORM code; consumers wrap it in ``database_sync_to_async``)."""

from __future__ import annotations

from typing import Any

from .models import Comment

#: Longest comment, in characters (the model's column size).
MAX_COMMENT_CHARS = 500

#: How many of the latest comments a page or a new socket starts with.
RECENT = 20


def recent_comments() -> list[dict[str, Any]]:
    """The latest comments, oldest first."""
    latest = Comment.objects.select_related("author").order_by("-id")[:RECENT]
    return [comment.as_json() for comment in reversed(latest)]


def add_comment(user: Any, text: str) -> int:
    """Save a comment by ``user``; its id."""
    return Comment.objects.create(author=user, text=text).id


def comment_json(comment_id: int) -> dict[str, Any] | None:
    """One comment, or ``None`` if it has gone."""
    comment = Comment.objects.select_related("author").filter(pk=comment_id).first()
    return comment.as_json() if comment else None

"""Room and table names that are safe as group names, and generated visitor names."""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from typing import Any

#: Room and table names are cut to this; with a prefix like ``chat_`` they stay far
#: below the 100-character limit channel layers put on group names.
MAX_NAME_LENGTH = 40

_SPACES = re.compile(r"\s+")
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")

_ADJECTIVES = ["amber", "brisk", "calm", "deft", "eager", "fuzzy", "jolly", "lucky", "merry", "quiet", "swift", "witty"]
_ANIMALS = ["badger", "crane", "eel", "ferret", "heron", "lynx", "otter", "panda", "quail", "robin", "stoat", "wren"]

#: Session key holding an anonymous visitor's generated name.
SESSION_NAME_KEY = "demo_name"


def clean_name(raw: str) -> str:
    """``raw`` made safe for a URL slug and a group name: spaces become ``-``, the rest of
    anything but ASCII letters, digits, ``_`` and ``-`` is dropped, and it is cut to
    ``MAX_NAME_LENGTH``. May be empty."""
    return _UNSAFE.sub("", _SPACES.sub("-", raw.strip()))[:MAX_NAME_LENGTH]


def generate_name() -> str:
    """A friendly random name such as ``swift-otter-42``."""
    return f"{random.choice(_ADJECTIVES)}-{random.choice(_ANIMALS)}-{random.randint(10, 99)}"


def visitor_name(user: Any, session: Mapping[str, Any] | None) -> str | None:
    """The logged-in user's name, else the name stored in the session (``None`` if neither)."""
    if user is not None and getattr(user, "is_authenticated", False):
        return user.get_username()
    if session is not None:
        return session.get(SESSION_NAME_KEY)
    return None


def ensure_visitor_name(request: Any) -> str:
    """The visitor's name for a page view, generating and storing one for anonymous visitors."""
    name = visitor_name(request.user, request.session)
    if name is None:
        name = request.session[SESSION_NAME_KEY] = generate_name()
    return name

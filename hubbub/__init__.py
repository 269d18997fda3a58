"""hubbub: real-time for Django, drop-in for Django Channels."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

DEFAULT_CHANNEL_LAYER = "default"

# Imported on first use: hubbub.broadcast needs Django's ORM, which needs settings. The
# module hubbub.broadcast is itself callable as broadcast(group, type, **payload).
_LAZY = {"broadcast", "abroadcast", "broadcasts"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from . import broadcast as module

        return module if name == "broadcast" else getattr(module, name)
    raise AttributeError(f"module 'hubbub' has no attribute {name!r}")

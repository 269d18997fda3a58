"""hubbub: real-time for Django, drop-in for Django Channels."""

from __future__ import annotations

# hubbub.broadcast(group, type, **payload) is a function; hubbub/broadcast.py says why the module
# of the same name is imported here, at once, and how it stays cheap to import.
from .broadcast import abroadcast, broadcast, broadcasts

__version__ = "0.1.0"

DEFAULT_CHANNEL_LAYER = "default"

__all__ = ["DEFAULT_CHANNEL_LAYER", "__version__", "abroadcast", "broadcast", "broadcasts"]

"""hubbub: real-time for Django, drop-in for Django Channels."""

__version__ = "0.1.0"

DEFAULT_CHANNEL_LAYER = "default"

"""Test tools: in-process communicators (and, with Django, a live server)."""

from .application import ApplicationCommunicator
from .http import HttpCommunicator
from .websocket import WebsocketCommunicator

__all__ = ["ApplicationCommunicator", "HttpCommunicator", "WebsocketCommunicator"]

"""Test tools: in-process communicators (and, with Django, a live server)."""

from .application import ApplicationCommunicator
from .http import HttpCommunicator
from .live import ChannelsLiveServerTestCase
from .websocket import WebsocketCommunicator

__all__ = ["ApplicationCommunicator", "ChannelsLiveServerTestCase", "HttpCommunicator", "WebsocketCommunicator"]

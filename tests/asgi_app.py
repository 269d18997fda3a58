"""A tiny application for tests that need ``ASGI_APPLICATION`` to resolve."""

from django.urls import path

from hubbub.generic.websocket import AsyncWebsocketConsumer
from hubbub.routing import ProtocolTypeRouter, URLRouter


class Echo(AsyncWebsocketConsumer):
    async def receive(self, text_data=None, bytes_data=None):
        await self.send(text_data=text_data, bytes_data=bytes_data)


application = ProtocolTypeRouter({"websocket": URLRouter([path("echo/", Echo.as_asgi())])})

"""Consumers the integration tests connect to."""

from django.contrib.auth import authenticate

from hubbub.auth import login, logout
from hubbub.consumer import SyncConsumer
from hubbub.db import database_sync_to_async
from hubbub.generic.websocket import AsyncJsonWebsocketConsumer, JsonWebsocketConsumer

from .models import Thumbnail


class WhoAmI(AsyncJsonWebsocketConsumer):
    """Says who the connection is logged in as (anonymous welcome)."""

    async def connect(self):
        await self.accept()
        user = self.scope["user"]
        await self.send_json({"user": user.get_username() if user.is_authenticated else None})


class MembersOnly(AsyncJsonWebsocketConsumer):
    """Refuses anonymous connections before accepting them."""

    async def connect(self):
        if not self.scope["user"].is_authenticated:
            await self.close()
            return
        await self.accept()
        await self.send_json({"welcome": self.scope["user"].get_username()})


class SessionCounter(JsonWebsocketConsumer):
    """Counts messages in the session, saving it after each (a sync consumer using the ORM)."""

    def receive_json(self, content, **kwargs):
        session = self.scope["session"]
        session["count"] = session.get("count", 0) + 1
        session.save()
        self.send_json({"count": session["count"], "key": session.session_key})


class Account(AsyncJsonWebsocketConsumer):
    """Logs in and out over the socket: {"login": [user, password]} or {"logout": true}."""

    async def receive_json(self, content, **kwargs):
        if "login" in content:
            username, password = content["login"]
            user = await database_sync_to_async(authenticate)(username=username, password=password)
            if user is None:
                await self.send_json({"error": "bad credentials"})
                return
            await login(self.scope, user)
        else:
            await logout(self.scope)
        await self.scope["session"].asave()
        user = self.scope["user"]
        await self.send_json(
            {
                "user": user.get_username() if user.is_authenticated else None,
                "session": self.scope["session"].session_key,
            }
        )


class ThumbnailConsumer(SyncConsumer):
    """The ``thumbnails`` worker channel: records each request in the database."""

    def thumbnails_make(self, message):
        Thumbnail.objects.create(name=message["name"], size=message.get("size", 64))

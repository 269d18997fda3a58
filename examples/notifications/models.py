"""Comments on the demo's notice board; each new one notifies everyone logged in."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Comment(models.Model):
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    text = models.CharField(max_length=500)
    created = models.DateTimeField(auto_now_add=True)

    def as_json(self) -> dict:
        return {
            "id": self.id,
            "author": self.author.get_username(),
            "text": self.text,
            "created": self.created.isoformat(),
        }

    def __str__(self) -> str:
        return f"{self.author}: {self.text[:40]}"

"""Django app config: add ``"hubbub"`` to ``INSTALLED_APPS``."""

from __future__ import annotations

from django.apps import AppConfig


class HubbubConfig(AppConfig):
    name = "hubbub"
    verbose_name = "hubbub"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system checks)


#: The name Channels users know.
ChannelsConfig = HubbubConfig

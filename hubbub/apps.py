"""Django app config: add ``"hubbub"`` to ``INSTALLED_APPS``."""

from __future__ import annotations

from django.apps import AppConfig


class HubbubConfig(AppConfig):
    """The app config Django picks for ``"hubbub"``; ``ready()`` registers the system checks
    and applies ``HUBBUB_GC`` (``hubbub.gctune``)."""

    name = "hubbub"
    verbose_name = "hubbub"
    default = True

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system checks)
        from .metrics import register_with_prometheus

        register_with_prometheus()  # hubbub's metrics in prometheus_client's registry, if installed
        from .gctune import install

        install()  # HUBBUB_GC's thresholds and freezes; collection pauses measured either way


class ChannelsConfig(HubbubConfig):
    """The name Channels users know (``"hubbub.apps.ChannelsConfig"`` in INSTALLED_APPS works).

    ``default = False`` keeps it out of Django's search for this module's default config,
    which must find exactly one: ``HubbubConfig``.
    """

    default = False

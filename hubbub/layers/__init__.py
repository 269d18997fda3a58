"""Channel layers: how consumers, views and workers send each other messages.

``CHANNEL_LAYERS`` in settings names them::

    CHANNEL_LAYERS = {"default": {"BACKEND": "hubbub.layers.InMemoryChannelLayer"}}

and ``get_channel_layer(alias)`` returns the (cached) layer, or ``None`` when the
alias is not configured.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.utils.module_loading import import_string

from .. import DEFAULT_CHANNEL_LAYER
from ..exceptions import ChannelFull, InvalidChannelLayerError
from .base import BaseChannelLayer
from .inmemory import InMemoryChannelLayer

__all__ = [
    "BaseChannelLayer",
    "ChannelFull",
    "ChannelLayerManager",
    "DEFAULT_CHANNEL_LAYER",
    "InMemoryChannelLayer",
    "InvalidChannelLayerError",
    "channel_layers",
    "get_channel_layer",
]

# Backends that moved: settings written for Channels keep working.
_ALIASES = {
    "channels.layers.InMemoryChannelLayer": "hubbub.layers.InMemoryChannelLayer",
    "channels_redis.core.RedisChannelLayer": "hubbub.layers.redis.RedisChannelLayer",
    "channels_redis.pubsub.RedisPubSubChannelLayer": "hubbub.layers.redis.RedisPubSubChannelLayer",
}


class ChannelLayerManager:
    """Builds each configured layer on first use and keeps it for the process."""

    def __init__(self) -> None:
        self.backends: dict[str, BaseChannelLayer] = {}
        setting_changed.connect(self._reset_backends)

    def _reset_backends(self, setting: str, **kwargs: Any) -> None:
        if setting == "CHANNEL_LAYERS":
            self.backends = {}

    @property
    def configs(self) -> dict[str, Any]:
        return getattr(settings, "CHANNEL_LAYERS", {}) or {}

    def make_backend(self, name: str) -> BaseChannelLayer:
        """Build the layer ``name`` from its ``CONFIG``."""
        config = self.configs[name].get("CONFIG", {})
        return self._make_backend(name, config)

    def make_test_backend(self, name: str) -> BaseChannelLayer:
        """Build the layer ``name`` from its ``TEST_CONFIG``."""
        try:
            config = self.configs[name]["TEST_CONFIG"]
        except KeyError:
            raise InvalidChannelLayerError(f"No TEST_CONFIG specified for channel layer {name!r}") from None
        return self._make_backend(name, config)

    def _make_backend(self, name: str, config: dict[str, Any]) -> BaseChannelLayer:
        if "ROUTING" in self.configs[name]:
            raise InvalidChannelLayerError(
                f"ROUTING key found for channel layer {name!r}: routing now goes in ASGI_APPLICATION"
            )
        try:
            path = self.configs[name]["BACKEND"]
        except KeyError:
            raise InvalidChannelLayerError(f"No BACKEND specified for channel layer {name!r}") from None
        path = _ALIASES.get(path, path)
        try:
            backend_class = import_string(path)
        except ImportError as exc:
            raise InvalidChannelLayerError(f"Cannot import BACKEND {path!r} for channel layer {name!r}: {exc}") from exc
        layer: BaseChannelLayer = backend_class(**config)
        return layer

    def __getitem__(self, key: str) -> BaseChannelLayer:
        if key not in self.backends:
            self.backends[key] = self.make_backend(key)
        return self.backends[key]

    def __contains__(self, key: str) -> bool:
        return key in self.configs

    def set(self, key: str, layer: BaseChannelLayer) -> BaseChannelLayer | None:
        """Replace the layer for ``key`` (tests do this), returning the old one."""
        old = self.backends.get(key)
        self.backends[key] = layer
        return old


channel_layers = ChannelLayerManager()


def get_channel_layer(alias: str = DEFAULT_CHANNEL_LAYER) -> BaseChannelLayer | None:
    """The layer configured under ``alias`` in ``CHANNEL_LAYERS``, or ``None`` if there is none."""
    try:
        return channel_layers[alias]
    except KeyError:
        return None

"""Fixtures running the presence, history and pub/sub tests on every layer that has the extensions.

The in-memory layer always; the Redis layers as soon as their ``extensions`` list the
ones the test module needs (until then they are skipped, saying so), on the shared Redis
under a private key prefix. Each test module builds its own with ``extension_layer``,
or with ``extension_default_layer`` when its consumers use the ``"default"`` layer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import pytest

from hubbub.layers import InMemoryChannelLayer, channel_layers

LAYERS = ["memory", "redis", "redis-pubsub", "redis-cluster", "redis-pubsub-cluster"]


@asynccontextmanager
async def _layer(request: Any, extensions: tuple, groups: Mapping[str, Any] | None) -> AsyncIterator[Any]:
    """The layer ``request.param`` names, skipped if it lacks one of ``extensions``; flushed and closed after."""
    if request.param == "memory":
        yield InMemoryChannelLayer(groups=groups)
        return
    from hubbub.layers.redis import RedisChannelLayer, RedisPubSubChannelLayer

    layer_class = (
        RedisChannelLayer
        if request.param.startswith("redis-cluster") or request.param == "redis"
        else RedisPubSubChannelLayer
    )
    missing = [name for name in extensions if name not in layer_class.extensions]
    if missing:
        pytest.skip(f"{layer_class.__name__} has no {missing!r} extension yet")
    if request.param.endswith("cluster"):
        where = {"cluster": request.getfixturevalue("redis_cluster_urls")}
    else:
        where = {"hosts": [request.getfixturevalue("redis_url")]}
    redis = layer_class(**where, prefix=request.getfixturevalue("redis_prefix"), groups=groups)
    try:
        yield redis
    finally:
        await redis.flush()
        await redis.close_pools()


def extension_layer(extension: str, groups: Mapping[str, Any] | None = None) -> Callable[..., Any]:
    """A parametrised ``layer`` fixture for the layers that declare ``extension``."""

    @pytest.fixture(params=LAYERS)
    async def layer(request: Any) -> AsyncIterator[Any]:
        async with _layer(request, (extension,), groups) as made:
            yield made

    return layer


def extension_default_layer(*extensions: str) -> Callable[..., Any]:
    """A parametrised fixture to name ``fresh_layer`` in a test module: each layer with ``extensions``,
    installed as the ``"default"`` channel layer for the test (in place of conftest's in-memory one)."""

    @pytest.fixture(params=LAYERS)
    async def default_layer(request: Any) -> AsyncIterator[Any]:
        async with _layer(request, extensions, None) as made:
            old = channel_layers.set("default", made)
            try:
                yield made
            finally:
                if old is None:
                    channel_layers.backends.pop("default", None)
                else:
                    channel_layers.set("default", old)

    return default_layer

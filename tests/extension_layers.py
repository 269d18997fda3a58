"""A ``layer`` fixture running the presence and history tests on every layer that has the extension.

The in-memory layer always; the Redis layers as soon as their ``extensions`` list the
one the test module needs (until then they are skipped, saying so), on the shared Redis
under a private key prefix. Each test module builds its own with ``extension_layer``.
"""

from __future__ import annotations

from typing import Any, AsyncIterator, Callable, Mapping, Optional

import pytest

from hubbub.layers import InMemoryChannelLayer

LAYERS = ["memory", "redis", "redis-pubsub"]


def extension_layer(extension: str, groups: Optional[Mapping[str, Any]] = None) -> Callable[..., Any]:
    """A parametrised ``layer`` fixture for the layers that declare ``extension``."""

    @pytest.fixture(params=LAYERS)
    async def layer(request: Any) -> AsyncIterator[Any]:
        if request.param == "memory":
            yield InMemoryChannelLayer(groups=groups)
            return
        from hubbub.layers.redis import RedisChannelLayer, RedisPubSubChannelLayer

        layer_class = RedisChannelLayer if request.param == "redis" else RedisPubSubChannelLayer
        if extension not in layer_class.extensions:
            pytest.skip(f"{layer_class.__name__} has no {extension!r} extension yet")
        redis = layer_class(hosts=[request.getfixturevalue("redis_url")],
                            prefix=request.getfixturevalue("redis_prefix"), groups=groups)
        try:
            yield redis
        finally:
            await redis.flush()
            await redis.close_pools()

    return layer

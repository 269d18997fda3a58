"""Redis channel layers, configured exactly like channels_redis's.

``RedisChannelLayer`` keeps messages in Redis lists until they are received;
``RedisPubSubChannelLayer`` delivers through Redis pub/sub (no queueing in Redis).
"""

from __future__ import annotations

from .core import RedisChannelLayer
from .pubsub import RedisPubSubChannelLayer

__all__ = ["RedisChannelLayer", "RedisPubSubChannelLayer"]

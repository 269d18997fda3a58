"""Settings for the benchmark site: no database, no middleware, one channel layer.

Both frameworks get the same configuration; only the backend paths differ. hubbub runs
with the garbage-collection setting docs/deployment.md recommends (``HUBBUB_GC = {}``)
unless ``BENCH_HUBBUB_GC=0`` asks for CPython's collector as it comes; its pauses are
measured either way (``hubbub_gc_*`` in ``/metrics``).
"""

from __future__ import annotations

import os
from typing import Any

FRAMEWORK = os.environ.get("BENCH_FRAMEWORK", "hubbub")
LAYER = os.environ.get("BENCH_LAYER", "inmemory")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
REDIS_PREFIX = os.environ.get("BENCH_PREFIX", "bench")
#: Comma-separated seed URLs of a Redis Cluster (the ``redis-cluster`` layer).
REDIS_CLUSTER = os.environ.get("BENCH_REDIS_CLUSTER", "")
#: ``1``: hubbub's documented GC setting; ``0``: CPython's defaults (the before/after of issue 13).
TUNED_GC = os.environ.get("BENCH_HUBBUB_GC", "1")

if FRAMEWORK not in ("hubbub", "channels"):
    raise ValueError(f"BENCH_FRAMEWORK must be 'hubbub' or 'channels', not {FRAMEWORK!r}")
if TUNED_GC not in ("0", "1"):
    raise ValueError(f"BENCH_HUBBUB_GC must be '0' or '1', not {TUNED_GC!r}")

_BACKENDS = {
    ("hubbub", "inmemory"): "hubbub.layers.InMemoryChannelLayer",
    ("hubbub", "redis"): "hubbub.layers.redis.RedisChannelLayer",
    ("hubbub", "pubsub"): "hubbub.layers.redis.RedisPubSubChannelLayer",
    ("hubbub", "redis-cluster"): "hubbub.layers.redis.RedisChannelLayer",
    ("channels", "inmemory"): "channels.layers.InMemoryChannelLayer",
    ("channels", "redis"): "channels_redis.core.RedisChannelLayer",
    ("channels", "pubsub"): "channels_redis.pubsub.RedisPubSubChannelLayer",
}


def _layer() -> dict[str, Any]:
    layer: dict[str, Any] = {"BACKEND": _BACKENDS[FRAMEWORK, LAYER]}
    if LAYER == "redis-cluster":
        layer["CONFIG"] = {"cluster": REDIS_CLUSTER.split(","), "prefix": REDIS_PREFIX}
    elif LAYER != "inmemory":
        layer["CONFIG"] = {"hosts": [REDIS_URL], "prefix": REDIS_PREFIX}
    return layer


SECRET_KEY = "hubbub-bench-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = [FRAMEWORK]
MIDDLEWARE: list = []
DATABASES: dict = {}
ROOT_URLCONF = "bench.site.urls"
ASGI_APPLICATION = "bench.site.asgi.application"
CHANNEL_LAYERS = {"default": _layer()}
HUBBUB_GC: dict[str, Any] | None = {} if TUNED_GC == "1" else None
USE_TZ = True
LOGGING = {"version": 1, "disable_existing_loggers": False, "root": {"level": "WARNING"}}

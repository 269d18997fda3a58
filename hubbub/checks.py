"""System checks: catch a misconfigured ``ASGI_APPLICATION`` or ``CHANNEL_LAYERS`` at start-up."""

from __future__ import annotations

from typing import Any, List

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string


@checks.register()
def check_asgi_application(app_configs: Any = None, **kwargs: Any) -> List[checks.CheckMessage]:
    if not getattr(settings, "ASGI_APPLICATION", None):
        return [
            checks.Warning(
                "ASGI_APPLICATION is not set, so runserver cannot serve WebSockets.",
                hint="Set ASGI_APPLICATION = 'yourproject.asgi.application'.",
                id="hubbub.W001",
            )
        ]
    from .routing import get_default_application

    try:
        get_default_application()
    except ImproperlyConfigured as exc:
        return [checks.Error(str(exc), hint="Check the dotted path in ASGI_APPLICATION.", id="hubbub.E001")]
    return []


@checks.register()
def check_channel_layers(app_configs: Any = None, **kwargs: Any) -> List[checks.CheckMessage]:
    from .layers import _ALIASES

    errors: List[checks.CheckMessage] = []
    layers = getattr(settings, "CHANNEL_LAYERS", {}) or {}
    if not isinstance(layers, dict):
        return [checks.Error("CHANNEL_LAYERS must be a dict of alias -> {'BACKEND': ..., 'CONFIG': {...}}.", id="hubbub.E002")]
    for alias, config in layers.items():
        backend = config.get("BACKEND") if isinstance(config, dict) else None
        if not backend:
            errors.append(checks.Error(f"CHANNEL_LAYERS[{alias!r}] has no BACKEND.", id="hubbub.E003"))
            continue
        try:
            import_string(_ALIASES.get(backend, backend))
        except ImportError as exc:
            hint = None
            if "redis" in backend:
                hint = "The Redis layers need the extra: pip install 'hubbub[redis]'."
            errors.append(
                checks.Error(f"CHANNEL_LAYERS[{alias!r}] BACKEND {backend!r} cannot be imported: {exc}", hint=hint, id="hubbub.E004")
            )
    return errors


@checks.register()
def check_app_order(app_configs: Any = None, **kwargs: Any) -> List[checks.CheckMessage]:
    """hubbub's runserver only wins if hubbub comes before the other apps that define one."""
    from django.apps import apps

    names = [config.name for config in apps.get_app_configs()]
    if "hubbub" not in names:
        return []
    earlier = [name for name in ("daphne", "django.contrib.staticfiles") if name in names[: names.index("hubbub")]]
    if not earlier:
        return []
    return [
        checks.Warning(
            f"'hubbub' comes after {' and '.join(repr(n) for n in earlier)} in INSTALLED_APPS, "
            "so `manage.py runserver` is not hubbub's and will not serve WebSockets.",
            hint="Move 'hubbub' above them in INSTALLED_APPS.",
            id="hubbub.W002",
        )
    ]


#: Seconds the deployment check gives each Redis server to answer a PING.
REDIS_CHECK_TIMEOUT = 3.0


@checks.register(deploy=True)
def check_redis_reachable(app_configs: Any = None, **kwargs: Any) -> List[checks.CheckMessage]:
    """``manage.py check --deploy``: every Redis server of every Redis layer answers a PING."""
    from django.utils.module_loading import import_string

    from .layers import _ALIASES

    layers = getattr(settings, "CHANNEL_LAYERS", {}) or {}
    if not isinstance(layers, dict):
        return []  # check_channel_layers reports it
    errors: List[checks.CheckMessage] = []
    for alias, config in layers.items():
        backend = config.get("BACKEND") if isinstance(config, dict) else None
        try:
            layer_class = import_string(_ALIASES.get(backend, backend)) if backend else None
            from .layers.redis.common import RedisLayerBase
            from .layers.redis.connection import decode_hosts
        except ImportError:
            continue  # check_channel_layers reports it
        if not (isinstance(layer_class, type) and issubclass(layer_class, RedisLayerBase)):
            continue
        try:
            hosts = decode_hosts((config.get("CONFIG") or {}).get("hosts"))
        except (TypeError, ValueError) as exc:
            errors.append(checks.Error(f"CHANNEL_LAYERS[{alias!r}] has unusable hosts: {exc}", id="hubbub.E010"))
            continue
        for host in hosts:
            problem = _ping(host)
            if problem is not None:
                errors.append(checks.Error(
                    f"CHANNEL_LAYERS[{alias!r}] cannot reach Redis {host.label}: {problem}",
                    hint="Start Redis or correct 'hosts'; until it answers, group_send raises "
                         "ChannelLayerUnavailable and no message crosses processes.",
                    id="hubbub.E010",
                ))
    return errors


def _ping(host: Any) -> str | None:
    """None if ``host`` answers a PING within ``REDIS_CHECK_TIMEOUT``, else what went wrong."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from .layers.redis.connection import CONNECTION_ERRORS, open_connection

    async def ping() -> None:
        connection = await open_connection(host.make_pool(REDIS_CHECK_TIMEOUT), host.label, REDIS_CHECK_TIMEOUT)
        await connection.disconnect()

    try:  # a loop of its own in a thread of its own: checks may run where a loop is already running
        with ThreadPoolExecutor(1) as executor:
            executor.submit(asyncio.run, ping()).result()
    except (*CONNECTION_ERRORS, ImportError) as exc:  # ImportError: Sentinel support missing
        return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    except Exception as exc:  # an auth or TLS error: the server is there but refuses us, still an error
        return f"{type(exc).__name__}: {exc}"
    return None

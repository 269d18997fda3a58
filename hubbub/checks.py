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
            continue
        errors.extend(_check_redis_cluster(alias, config))
    return errors


def _check_redis_cluster(alias: str, config: dict) -> List[checks.CheckMessage]:
    """A Redis layer on a cluster: its settings, and whether the seeds are cluster nodes that let us in."""
    options = config.get("CONFIG") or {}
    if not isinstance(options, dict) or "cluster" not in options:
        return []
    from .layers import _ALIASES

    try:
        from .layers.redis.cluster import probe

        layer = import_string(_ALIASES.get(config["BACKEND"], config["BACKEND"]))(**options)
        probe(layer.cluster)
    except (ValueError, TypeError) as exc:
        return [checks.Error(f"CHANNEL_LAYERS[{alias!r}] CONFIG: {exc}", id="hubbub.E010")]
    except Exception as exc:  # unreachable now: the processes retry at run time
        return [checks.Warning(
            f"CHANNEL_LAYERS[{alias!r}] CONFIG 'cluster': no seed node answered ({exc})", id="hubbub.W010",
        )]
    return []


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

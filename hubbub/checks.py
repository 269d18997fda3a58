"""System checks: catch a misconfigured ``ASGI_APPLICATION`` or ``CHANNEL_LAYERS`` at start-up."""

from __future__ import annotations

import difflib
import importlib
from types import ModuleType
from typing import Any

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured


@checks.register()
def check_asgi_application(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
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
def check_channel_layers(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    errors: list[checks.CheckMessage] = []
    layers = getattr(settings, "CHANNEL_LAYERS", {}) or {}
    if not isinstance(layers, dict):
        return [
            checks.Error(
                "CHANNEL_LAYERS must be a dict of alias -> {'BACKEND': ..., 'CONFIG': {...}}.", id="hubbub.E002"
            )
        ]
    for alias, config in layers.items():
        backend = config.get("BACKEND") if isinstance(config, dict) else None
        if not backend:
            errors.append(checks.Error(f"CHANNEL_LAYERS[{alias!r}] has no BACKEND.", id="hubbub.E003"))
            continue
        problem = backend_problem(backend)
        if problem is not None:
            message, hint = problem
            errors.append(
                checks.Error(f"CHANNEL_LAYERS[{alias!r}] BACKEND {backend!r}: {message}", hint=hint, id="hubbub.E004")
            )
            continue
        errors.extend(_check_redis_cluster(alias, config))
    return errors


#: Modules that only the Redis layers import; missing, they mean the extra is not installed.
_REDIS_EXTRA_MODULES = ("redis", "msgpack")
_REDIS_EXTRA_HINT = "The Redis layers need the extra: pip install 'hubbub[redis]'."


def backend_problem(backend: str) -> tuple[str, str | None] | None:
    """What is wrong with the layer path ``backend`` as ``(message, hint)``, or ``None`` if it imports."""
    from .layers import _ALIASES

    target = _ALIASES.get(backend, backend)
    module_name, _, class_name = target.rpartition(".")
    if not module_name:
        return "not a dotted path to a layer class.", f"For example {_known_backends()[0]!r}."
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        return _unmapped_channels_path(backend) or _missing_module(module_name, exc)
    if hasattr(module, class_name):
        return None
    return _unmapped_channels_path(backend) or _missing_class(module, class_name)


def _missing_module(module_name: str, exc: ImportError) -> tuple[str, str | None]:
    missing = getattr(exc, "name", None) or ""
    if missing.partition(".")[0] in _REDIS_EXTRA_MODULES:
        return f"cannot be imported: {exc}", _REDIS_EXTRA_HINT
    return f"cannot import module {module_name!r} ({exc}).", _module_hint(module_name)


def _missing_class(module: ModuleType, class_name: str) -> tuple[str, str | None]:
    names = _layer_classes(module)
    message = f"no class {class_name!r} in module {module.__name__!r}"
    close = difflib.get_close_matches(class_name, names, n=1)
    if close:
        return f"{message}; did you mean {close[0]!r}?", f"Use {module.__name__}.{close[0]}."
    listed = ", ".join(names) or "none"
    return f"{message}.", f"Layer classes in {module.__name__}: {listed}."


def _unmapped_channels_path(backend: str) -> tuple[str, str | None] | None:
    """A ``channels``/``channels_redis`` path hubbub does not map to one of its layers, explained as such."""
    from .layers import _ALIASES

    if backend in _ALIASES or backend.partition(".")[0] not in ("channels", "channels_redis"):
        return None
    mapped = ", ".join(f"{name} -> {target}" for name, target in _ALIASES.items())
    close = difflib.get_close_matches(backend, list(_ALIASES), n=1)
    message = f"not one of the Channels paths hubbub maps to its own layers ({mapped})"
    if close:
        return f"{message}; did you mean {close[0]!r}?", f"Or name hubbub's layer directly: {_ALIASES[close[0]]!r}."
    return f"{message}.", "hubbub does not need channels or channels_redis installed: use one of the paths above."


def _layer_classes(module: ModuleType) -> list[str]:
    """The public channel layer classes ``module`` offers (any public class if it offers none)."""
    from .layers import BaseChannelLayer

    classes = {
        name: value for name, value in vars(module).items() if isinstance(value, type) and not name.startswith("_")
    }
    layers = [name for name, value in classes.items() if issubclass(value, BaseChannelLayer)]
    return sorted(layers or classes)


def _known_backends() -> list[str]:
    from .layers import _ALIASES

    return sorted(set(_ALIASES.values()))


def _module_hint(module_name: str) -> str:
    """Name the closest module holding one of hubbub's layers, and list the layers."""
    paths = _known_backends()
    close = difflib.get_close_matches(module_name, sorted({path.rpartition(".")[0] for path in paths}), n=1)
    listed = f"hubbub's layers: {', '.join(paths)}."
    return f"Did you mean module {close[0]!r}? {listed}" if close else listed


def _check_redis_cluster(alias: str, config: dict[str, Any]) -> list[checks.CheckMessage]:
    """A Redis layer on a cluster: settings it refuses (no network here; ``--deploy`` asks the seeds)."""
    options = config.get("CONFIG") or {}
    if not isinstance(options, dict) or "cluster" not in options:
        return []
    from django.utils.module_loading import import_string

    from .layers import _ALIASES

    try:
        import_string(_ALIASES.get(config["BACKEND"], config["BACKEND"]))(**options)
    except (ValueError, TypeError) as exc:
        return [checks.Error(f"CHANNEL_LAYERS[{alias!r}] CONFIG: {exc}", id="hubbub.E011")]
    return []


def _probe_redis_cluster(alias: str, layer_class: Any, options: dict[str, Any]) -> list[checks.CheckMessage]:
    """``--deploy``: a seed answers ``CLUSTER SLOTS`` (so it is a cluster node, and it let us in)."""
    from .layers.redis.cluster import probe
    from .layers.redis.connection import CONNECTION_ERRORS

    try:
        layer = layer_class(**options)
    except (ValueError, TypeError):
        return []  # check_channel_layers reports it
    try:
        probe(layer.cluster, REDIS_CHECK_TIMEOUT)
    except ValueError as exc:  # not a cluster node, or the password was refused
        return [checks.Error(f"CHANNEL_LAYERS[{alias!r}] CONFIG: {exc}", id="hubbub.E011")]
    except CONNECTION_ERRORS as exc:
        return [
            checks.Error(
                f"CHANNEL_LAYERS[{alias!r}] cannot reach a Redis cluster seed ({layer.cluster.label}): {exc}",
                hint="Start the cluster or correct 'cluster'; until a node answers, group_send raises "
                "ChannelLayerUnavailable and no message crosses processes.",
                id="hubbub.E010",
            )
        ]
    return []


@checks.register()
def check_app_order(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
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
def check_redis_reachable(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """``manage.py check --deploy``: every Redis server of every Redis layer answers a PING."""
    from django.utils.module_loading import import_string

    from .layers import _ALIASES

    layers = getattr(settings, "CHANNEL_LAYERS", {}) or {}
    if not isinstance(layers, dict):
        return []  # check_channel_layers reports it
    errors: list[checks.CheckMessage] = []
    for alias, config in layers.items():
        backend = config.get("BACKEND") if isinstance(config, dict) else None
        if not backend or not isinstance(backend, str):
            continue  # check_channel_layers reports it
        try:
            layer_class = import_string(_ALIASES.get(backend, backend))
            from .layers.redis.common import RedisLayerBase
            from .layers.redis.connection import decode_hosts
        except ImportError:
            continue  # check_channel_layers reports it
        if not (isinstance(layer_class, type) and issubclass(layer_class, RedisLayerBase)):
            continue
        if "cluster" in (config.get("CONFIG") or {}):
            errors.extend(_probe_redis_cluster(alias, layer_class, config["CONFIG"]))
            continue
        try:
            hosts = decode_hosts((config.get("CONFIG") or {}).get("hosts"))
        except (TypeError, ValueError) as exc:
            errors.append(checks.Error(f"CHANNEL_LAYERS[{alias!r}] has unusable hosts: {exc}", id="hubbub.E010"))
            continue
        for host in hosts:
            problem = _ping(host)
            if problem is not None:
                errors.append(
                    checks.Error(
                        f"CHANNEL_LAYERS[{alias!r}] cannot reach Redis {host.label}: {problem}",
                        hint="Start Redis or correct 'hosts'; until it answers, group_send raises "
                        "ChannelLayerUnavailable and no message crosses processes.",
                        id="hubbub.E010",
                    )
                )
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
    except CONNECTION_ERRORS + (ImportError,) as exc:  # ImportError: Sentinel support missing
        return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    except Exception as exc:  # an auth or TLS error: the server is there but refuses us, still an error
        return f"{type(exc).__name__}: {exc}"
    return None

"""The ``channels`` and ``channels_redis`` import names, for add-ons that import them.

Packages written for Channels (djangochannelsrestframework, strawberry's Channels
integration, ...) say ``from channels.db import database_sync_to_async``; their
users cannot edit that. One line, before anything imports such a package (at the
top of ``asgi.py`` and ``manage.py``)::

    import hubbub.compat; hubbub.compat.install_channels_alias()

From then on, in this process, ``import channels.X`` gives the module ``hubbub.X``
itself (the same object, so a patch of ``channels.db.close_old_connections``
patches ``hubbub.db``) and ``channels_redis.core`` / ``.pubsub`` / ``.serializers``
give hubbub's Redis layer modules. ``channels.__version__`` is the Channels release
whose API hubbub follows, so version checks in add-ons pass.

The alias is refused (``ChannelsAliasError``) when the real ``channels`` or
``channels_redis`` is installed or imported: one name would then mean two packages.
Nothing here reads Django settings or imports hubbub's modules before they are asked
for. ``uninstall_channels_alias()`` undoes it (tests use it to leave no trace).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types
from typing import Optional, Sequence

__all__ = [
    "CHANNELS_API_VERSION",
    "CHANNELS_REDIS_API_VERSION",
    "ChannelsAliasError",
    "install_channels_alias",
    "uninstall_channels_alias",
]

#: The releases whose public API hubbub follows (see docs: "Porting from Channels").
CHANNELS_API_VERSION = "4.3.2"
CHANNELS_REDIS_API_VERSION = "4.3.0"

#: channels_redis' modules and hubbub's modules that play their part.
_REDIS_MODULES = {
    "channels_redis.core": "hubbub.layers.redis.core",
    "channels_redis.pubsub": "hubbub.layers.redis.pubsub",
    "channels_redis.serializers": "hubbub.layers.redis.serializers",
    "channels_redis.utils": "hubbub.layers.redis.connection",
}
_TOP_LEVEL = ("channels", "channels_redis")


class ChannelsAliasError(ImportError):
    """The alias cannot be installed: the real package of that name is present."""


def _target(fullname: str) -> Optional[str]:
    """The hubbub module standing for ``fullname``, '' for a top-level name, None if not ours."""
    if fullname in _TOP_LEVEL:
        return ""
    if fullname.startswith("channels."):
        return "hubbub." + fullname[len("channels."):]
    if fullname.startswith("channels_redis."):
        return _REDIS_MODULES.get(fullname, "hubbub.layers.redis." + fullname[len("channels_redis."):])
    return None


def _top_level_module(name: str) -> types.ModuleType:
    """The package ``channels`` (or ``channels_redis``): a version, the constant, and hubbub's submodules."""
    import hubbub

    module = types.ModuleType(name, f"hubbub {hubbub.__version__}, imported as {name!r} (see hubbub.compat).")
    module.__path__ = []  # a package: its submodules come from the finder below
    module.__version__ = CHANNELS_API_VERSION if name == "channels" else CHANNELS_REDIS_API_VERSION
    module.hubbub_version = hubbub.__version__
    if name == "channels":
        module.DEFAULT_CHANNEL_LAYER = hubbub.DEFAULT_CHANNEL_LAYER
    module.__hubbub_alias__ = True
    return module


class _AliasLoader(importlib.abc.Loader):
    """Loads an aliased name as the hubbub module it stands for (not a copy)."""

    def __init__(self, fullname: str, target: str):
        self.fullname = fullname
        self.target = target
        self.own_spec: Optional[importlib.machinery.ModuleSpec] = None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        if not self.target:
            return _top_level_module(self.fullname)
        module = importlib.import_module(self.target)
        self.own_spec = module.__spec__
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        if self.own_spec is not None:
            module.__spec__ = self.own_spec  # the import system set the alias's spec: hubbub's module keeps its own


class _AliasFinder(importlib.abc.MetaPathFinder):
    """Answers imports of ``channels*`` and ``channels_redis*`` with hubbub's modules."""

    def find_spec(
        self, fullname: str, path: Optional[Sequence[str]] = None, target: Optional[types.ModuleType] = None
    ) -> Optional[importlib.machinery.ModuleSpec]:
        hubbub_name = _target(fullname)
        if hubbub_name is None:
            return None
        if not hubbub_name:
            return importlib.machinery.ModuleSpec(fullname, _AliasLoader(fullname, ""), is_package=True)
        found = importlib.util.find_spec(hubbub_name)
        if found is None:
            return None  # no such hubbub module: the import fails as for any missing module
        is_package = found.submodule_search_locations is not None
        return importlib.machinery.ModuleSpec(fullname, _AliasLoader(fullname, hubbub_name), is_package=is_package)


_finder = _AliasFinder()


def _is_alias(module: types.ModuleType) -> bool:
    name = getattr(module, "__name__", "")
    return getattr(module, "__hubbub_alias__", False) or name == "hubbub" or name.startswith("hubbub.")


def _refuse_real_packages() -> None:
    for name in _TOP_LEVEL:
        loaded = sys.modules.get(name)
        if loaded is not None and not _is_alias(loaded):
            raise ChannelsAliasError(
                f"The real {name!r} package is already imported (from {getattr(loaded, '__file__', '?')}): "
                f"hubbub cannot also answer to that name. Uninstall it (pip uninstall {name.replace('_', '-')}) "
                "or do not call hubbub.compat.install_channels_alias()."
            )
        spec = importlib.machinery.PathFinder.find_spec(name)
        if spec is not None:
            where = spec.origin or ", ".join(spec.submodule_search_locations or [])
            raise ChannelsAliasError(
                f"The real {name!r} package is installed ({where}): with hubbub's alias, 'import {name}' would "
                f"mean two packages. Uninstall it (pip uninstall {name.replace('_', '-')}) to use hubbub under "
                "that name, or do not call hubbub.compat.install_channels_alias()."
            )


def install_channels_alias() -> None:
    """Make ``import channels…`` and ``import channels_redis…`` give hubbub's modules (idempotent).

    Raises ``ChannelsAliasError`` if the real ``channels`` or ``channels_redis`` is installed.
    """
    if _finder in sys.meta_path:
        return
    _refuse_real_packages()
    sys.meta_path.insert(0, _finder)


def uninstall_channels_alias() -> None:
    """Undo ``install_channels_alias()``: the names are forgotten (modules that imported them keep theirs)."""
    if _finder in sys.meta_path:
        sys.meta_path.remove(_finder)
    for name, module in list(sys.modules.items()):
        if _target(name) is not None and module is not None and _is_alias(module):
            del sys.modules[name]

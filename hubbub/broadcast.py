"""Announce a change to a group only once the database has committed it.

``broadcast(group, type, **payload)`` builds ``{"type": type, **payload}``, checks it
at once (a bad group name fails at the call, not after the commit), and sends it
with ``group_send`` from ``transaction.on_commit``: after the surrounding
transaction commits, never if it rolls back, and immediately when no transaction
is open. A failed send after the commit is logged, not raised: the change is
committed either way.

From async code (a consumer's handler) there is no transaction to wait for
(Django's ``atomic`` is sync only): the message is sent by a task started at once.
``abroadcast`` is the same for code that wants to await the delivery.

``broadcasts(Model, group=...)`` announces saves and deletes of a model through
``broadcast``; see its docstring.

``hubbub.broadcast`` is a plain function, and also the dotted name of this plain
module. Python makes a submodule an attribute of its package when it first loads it,
which would hide the function behind the module; so the package
(``hubbub/__init__.py``) loads this module itself, first thing, then binds its own
``broadcast`` to the function. Every later ``import hubbub.broadcast`` or ``from
hubbub.broadcast import ...`` finds the module loaded and rebinds nothing: both
``hubbub.broadcast(group, type, **payload)`` and ``from hubbub.broadcast import
broadcast, abroadcast, broadcasts`` work, whatever was imported first. (The
alternatives were a module made callable by swapping its class, a trick, or
``hubbub.broadcast`` documented as the module, which would break
``hubbub.broadcast(...)``.) The one form that reads the package's attribute,
``import hubbub.broadcast as name``, binds the function;
``importlib.import_module("hubbub.broadcast")`` returns the module.

Because ``import hubbub`` loads this module, it imports Django's ORM, asgiref and the
channel layers only inside the functions that use them, so ``import hubbub`` stays
cheap and needs no settings.
"""

from __future__ import annotations

import asyncio
import builtins
import functools
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .exceptions import ChannelLayerUnavailable, InvalidChannelLayerError

if TYPE_CHECKING:
    from django.db import models

    from .layers import BaseChannelLayer

__all__ = ["ModelBroadcast", "abroadcast", "broadcast", "broadcasts"]

logger = logging.getLogger("hubbub.broadcast")

_pending: set[asyncio.Task[None]] = set()  # sends started from async code, kept alive until done


def _prepare(group: str, type: str, payload: dict[str, Any]) -> tuple[BaseChannelLayer, dict[str, Any]]:
    from .layers import get_channel_layer

    if "type" in payload:
        raise TypeError("broadcast() takes the message type as its second argument, not as type=")
    layer = get_channel_layer()
    if layer is None:
        raise InvalidChannelLayerError("broadcast() needs a 'default' channel layer in CHANNEL_LAYERS")
    message = {"type": type, **payload}
    layer.require_valid_group_name(group)
    layer.require_valid_message(message)
    return layer, message


def broadcast(group: str, type: str, /, *, using: str | None = None, **payload: Any) -> None:
    """Send ``{"type": type, **payload}`` to ``group`` once the transaction on ``using`` commits."""
    from django.db import transaction

    layer, message = _prepare(group, type, payload)
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        transaction.on_commit(functools.partial(_send_from_sync, layer, group, message), using=using, robust=True)
        return
    task = loop.create_task(_send(layer, group, message))
    _pending.add(task)
    task.add_done_callback(_pending.discard)


async def abroadcast(group: str, type: str, /, **payload: Any) -> None:
    """Send ``{"type": type, **payload}`` to ``group`` now, from async code, and wait until it is sent."""
    layer, message = _prepare(group, type, payload)
    await layer.group_send(group, message)


def _send_from_sync(layer: BaseChannelLayer, group: str, message: dict[str, Any]) -> None:
    from asgiref.sync import async_to_sync

    async_to_sync(_send)(layer, group, message)


async def _send(layer: BaseChannelLayer, group: str, message: dict[str, Any]) -> None:
    try:
        await layer.group_send(group, message)
    except ChannelLayerUnavailable as exc:  # an outage: already logged once and counted by the layer
        logger.error("broadcast of %r to group %r failed: %s", message["type"], group, exc)
    except Exception:
        logger.exception("broadcast of %r to group %r failed", message["type"], group)


GroupSpec = str | Callable[[Any], str | None]


class ModelBroadcast:
    """Announces saves and deletes of one model to a group; made by ``broadcasts``."""

    def __init__(self, model: type[models.Model], group: GroupSpec, type: str | None):
        from django.db import models
        from django.db.models.signals import post_delete, post_save

        if not (isinstance(model, builtins.type) and issubclass(model, models.Model)):
            raise TypeError(f"broadcasts() takes a model class, got {model!r}")
        if not (isinstance(group, str) or callable(group)):
            raise TypeError(f"broadcasts(group=...) takes a group name or a function of the instance, got {group!r}")
        if type is not None and not isinstance(type, str):
            raise TypeError(f"broadcasts(type=...) takes a message type string, got {type!r}")
        self.model, self.group = model, group
        self.type = type or model._meta.label_lower
        self.payload: Callable[[Any, str], dict[str, Any]] | None = None
        post_save.connect(self._saved, sender=model, weak=False)
        post_delete.connect(self._deleted, sender=model, weak=False)

    def __call__(self, payload: Callable[[Any, str], dict[str, Any]]) -> Callable[[Any, str], dict[str, Any]]:
        """Used as a decorator: ``payload(instance, event)`` adds fields to each announcement."""
        self.payload = payload
        return payload

    def disconnect(self) -> None:
        """Stop announcing this model's changes."""
        from django.db.models.signals import post_delete, post_save

        post_save.disconnect(self._saved, sender=self.model)
        post_delete.disconnect(self._deleted, sender=self.model)

    def _saved(
        self, sender: Any, instance: Any, created: bool, raw: bool = False, using: str | None = None, **kwargs: Any
    ) -> None:
        if not raw:  # fixtures being loaded are not news
            self._announce(instance, "created" if created else "updated", using)

    def _deleted(self, sender: Any, instance: Any, using: str | None = None, **kwargs: Any) -> None:
        self._announce(instance, "deleted", using)

    def _announce(self, instance: Any, event: str, using: str | None) -> None:
        group = self.group(instance) if callable(self.group) else self.group
        if group is None:
            return
        fields = {"event": event, "model": self.model._meta.label_lower, "pk": instance.pk}
        if self.payload is not None:
            fields.update(self.payload(instance, event))
        broadcast(group, self.type, using=using, **fields)


def broadcasts(model: type[models.Model], *, group: GroupSpec, type: str | None = None) -> ModelBroadcast:
    """Announce every save and delete of ``model`` to ``group`` after the transaction commits.

    ``group`` is a group name, or a function of the instance returning one (or ``None``
    to say nothing about that instance). Each message is ``{"type": type, "event":
    "created" | "updated" | "deleted", "model": "app_label.model", "pk": ...}``;
    ``type`` defaults to the model's label (``"blog.article"``, handled by
    ``blog_article``). Used as a decorator, the function it decorates adds fields::

        @broadcasts(Article, group=lambda article: f"blog_{article.blog_id}")
        def article_fields(article, event):
            return {"title": article.title}
    """
    return ModelBroadcast(model, group, type)

"""What a consumer's connection does besides dispatching: per-protocol behaviour and feature hooks.

Theory of operation. The base consumer (``hubbub.consumer``) knows no protocol and no
feature. When a connection opens it asks this module for two things:

* The protocol's connection object, chosen by ``scope["type"]`` from ``PROTOCOLS``. A
  protocol module registers a factory with ``register_protocol`` (``hubbub.websocket_state``
  does for ``"websocket"``: outbox, handshake state, 1011 after an error); any other scope
  type gets a ``PlainConnection``. The object gives the consumer its ``send``, may start
  tasks in the consumer's task group, and has the last word when the consumer ends.
* The feature hooks, ``ConnectionHooks`` registered with ``add_hooks`` (metrics count
  connections and messages, presence leaves its groups). ``opened`` and ``closed`` run once
  per connection; ``message_in`` and ``message_out`` once per message, with its type, so
  they are plain callables composed once (``hooks()``), never a loop per message.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple, Protocol

from .typing import Message, Scope, Send

__all__ = [
    "ConnectionHooks",
    "Hooks",
    "PlainConnection",
    "ProtocolConnection",
    "add_hooks",
    "hooks",
    "open_connection",
    "register_protocol",
    "remove_hooks",
]


class ConnectionHooks(NamedTuple):
    """Callables a feature attaches to every consumer's connection; any may be None."""

    #: ``opened(consumer)``, once the consumer has its scope and channel layer.
    opened: Callable[[Any], None] | None = None
    #: ``await closed(consumer)``, once the consumer has ended, before its ``_teardown``.
    closed: Callable[[Any], Awaitable[None]] | None = None
    #: ``message_in(type)`` for each message dispatched (from the server or the channel layer).
    message_in: Callable[[Any], None] | None = None
    #: ``message_out(type)`` for each message sent to a server whose protocol does not count its own.
    message_out: Callable[[Any], None] | None = None


class Hooks(NamedTuple):
    """All registered hooks, composed: one call each, whatever the number of features."""

    opened: tuple[Callable[[Any], None], ...]
    closed: tuple[Callable[[Any], Awaitable[None]], ...]
    message_in: Callable[[Any], None]
    message_out: Callable[[Any], None] | None


class ProtocolConnection(Protocol):
    """What the base consumer needs from a protocol's connection object."""

    #: The consumer's way to the server (``base_send`` wraps it).
    send: Send

    async def finish(self, error: Exception | None) -> bool:
        """The consumer has ended (with ``error``, if it raised): send what must be sent last.

        True if the error is fully answered here and must not propagate to the server.
        """
        ...


def _ignore(kind: Any) -> None:
    return None


_registered: list[ConnectionHooks] = []
_composed: Hooks | None = None


def add_hooks(new: ConnectionHooks) -> None:
    """Attach ``new`` to every connection opened from now on (features call this on import)."""
    global _composed
    if new not in _registered:
        _registered.append(new)
        _composed = None


def remove_hooks(old: ConnectionHooks) -> None:
    """Detach ``old`` from connections opened from now on."""
    global _composed
    if old in _registered:
        _registered.remove(old)
        _composed = None


def _fan_out(calls: list[Callable[[Any], None]]) -> Callable[[Any], None] | None:
    if not calls:
        return None
    if len(calls) == 1:
        return calls[0]

    def each(kind: Any) -> None:
        for call in calls:
            call(kind)

    return each


def hooks() -> Hooks:
    """The registered hooks, composed (cached until ``add_hooks`` changes them)."""
    global _composed
    if _composed is None:
        _composed = Hooks(
            opened=tuple(h.opened for h in _registered if h.opened is not None),
            closed=tuple(h.closed for h in _registered if h.closed is not None),
            message_in=_fan_out([h.message_in for h in _registered if h.message_in is not None]) or _ignore,
            message_out=_fan_out([h.message_out for h in _registered if h.message_out is not None]),
        )
    return _composed


class PlainConnection:
    """Any protocol without a registered connection (HTTP, lifespan, custom): the server's ``send``,
    with each message reported to the ``message_out`` hooks."""

    __slots__ = ("send",)

    def __init__(self, consumer: Any, scope: Scope, send: Send):
        count = hooks().message_out
        if count is None:
            self.send = send
            return

        async def counted(message: Message) -> None:
            count(message["type"])
            await send(message)

        self.send = counted

    async def finish(self, error: Exception | None) -> bool:
        return False


ConnectionFactory = Callable[[Any, Scope, Send], ProtocolConnection]

PROTOCOLS: dict[str, ConnectionFactory] = {}


def register_protocol(scope_type: str, factory: ConnectionFactory) -> None:
    """Make ``factory(consumer, scope, send)`` the connection of every consumer whose scope has ``scope_type``."""
    PROTOCOLS[scope_type] = factory


def open_connection(consumer: Any, scope: Scope, send: Send) -> ProtocolConnection:
    """The connection object for ``scope``'s protocol."""
    factory = PROTOCOLS.get(scope["type"], PlainConnection)
    return factory(consumer, scope, send)

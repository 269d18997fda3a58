"""Consumers: one instance per connection, turning ASGI and layer messages into method calls.

Theory of operation. A consumer reads two sources: the server's ``receive`` and, when
a channel layer is configured, its own channel on that layer. The task the server
runs the application in reads ``receive`` and dispatches directly; a second,
long-lived task reads the channel. A lock makes handlers run one at a time, as in
Channels, and costs nothing when uncontended. Nothing is created per message: no
task, no ``asyncio.wait``, no thread hop (database connections are looked after by
``database_sync_to_async`` around the code that uses them, not around every message).
A WebSocket's sends go through its outbox (``hubbub.backpressure``): straight to the
server while the client reads, queued up to a bound while it does not.

If the channel task's handler raises (``StopConsumer`` included), it records the
exception and cancels the main task, which re-raises it, so an error in a group
message handler ends the connection exactly as one in a receive handler does.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import logging
from typing import Any, Awaitable, Callable, ClassVar, Dict, Optional

from asgiref.sync import async_to_sync

from . import DEFAULT_CHANNEL_LAYER, exceptions, metrics
from .backpressure import TRY_AGAIN_LATER, Outbox, check_limits
from .db import aclose_old_connections, database_sync_to_async
from .exceptions import InvalidGroupName, StopConsumer
from .layers import BaseChannelLayer, get_channel_layer
from .presence import PresenceAttribute, leave_all_if_used
from .ratelog import RateLimitedLog
from .typing import ASGIApp, Message, Receive, Scope, Send
from .utils import await_many_dispatch  # re-exported, as Channels does
from . import tcp_user_timeout  # noqa: I001 (its own line: other branches edit the one above)

__all__ = [
    "AsyncConsumer",
    "DEFAULT_CHANNEL_LAYER",
    "StopConsumer",
    "SyncConsumer",
    "aclose_old_connections",
    "await_many_dispatch",
    "database_sync_to_async",
    "get_channel_layer",
    "get_handler_name",
]

logger = logging.getLogger("hubbub.consumer")

_handler_names: Dict[str, str] = {}

#: The message types hubbub's own features send to groups: presence (hubbub.presence) and
#: pub/sub with its history (hubbub.generic.pubsub). A consumer with no handler for one skips it.
HUBBUB_EVENT_TYPES = frozenset({"presence.join", "presence.leave", "pubsub.message"})


def get_handler_name(message: Message) -> str:
    """The method name for ``message['type']``: dots become underscores.

    Raises ``ValueError`` for a message without a type, or a type that would name a
    private method (leading underscore).
    """
    try:
        kind = message["type"]
    except (KeyError, TypeError):
        raise ValueError(f"Incoming message has no 'type' key: {message!r}")
    try:
        return _handler_names[kind]
    except KeyError:
        pass
    if not isinstance(kind, str):
        raise ValueError(f"Message type must be a string, got {kind!r}")
    name = kind.replace(".", "_")
    if name.startswith("_"):
        raise ValueError(f"Malformed type in message (leading underscore): {kind!r}")
    if len(_handler_names) < 4096:
        _handler_names[kind] = name
    return name


class AsyncConsumer:
    """Base consumer: dispatches each message to the ``async`` method its type names."""

    _sync: ClassVar[bool] = False
    channel_layer_alias: ClassVar[str] = DEFAULT_CHANNEL_LAYER
    #: Bounds of a WebSocket's outgoing buffer and what happens past them: see hubbub.backpressure.
    outbox_max_messages: ClassVar[int] = 100
    outbox_max_bytes: ClassVar[int] = 1024 * 1024  # daphne's frame limit: one maximal frame fits
    outbox_policy: ClassVar[str] = "close"  # or "drop_oldest"

    channel_layer: Optional[BaseChannelLayer]
    channel_name: str
    scope: Scope
    presence = PresenceAttribute()  # self.presence.join(group, info): see hubbub.presence

    def __init__(self, **kwargs: Any):
        for key, value in kwargs.items():
            if not hasattr(type(self), key):
                raise TypeError(
                    f"{type(self).__name__}.as_asgi() got an unexpected keyword argument {key!r}: "
                    "only attributes the class defines, or parameters of its __init__, can be set this way"
                )
            setattr(self, key, value)

    @classmethod
    def as_asgi(cls, **initkwargs: Any) -> ASGIApp:
        """An ASGI application making one instance of this consumer per connection.

        Each keyword is passed to the constructor: a parameter of the class's own
        ``__init__`` goes to it (``GraphQLWSConsumer.as_asgi(schema=...)``), and hubbub's
        base ``__init__`` sets any other as the class attribute of that name. A keyword
        that is neither raises ``TypeError`` here, when the routes are built.
        """
        accepted = cls._init_keywords()
        for key in initkwargs:
            if key not in accepted and not hasattr(cls, key):
                raise TypeError(f"{cls.__name__}.as_asgi() got an unexpected keyword argument {key!r}")
        settings = {"outbox_max_messages": cls.outbox_max_messages, "outbox_max_bytes": cls.outbox_max_bytes,
                    "outbox_policy": cls.outbox_policy, **initkwargs}
        check_limits(settings["outbox_max_messages"], settings["outbox_max_bytes"], settings["outbox_policy"],
                     cls.__name__)

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            consumer = cls(**initkwargs)
            return await consumer(scope, receive, send)

        app.consumer_class = cls  # type: ignore[attr-defined]
        app.consumer_initkwargs = initkwargs  # type: ignore[attr-defined]
        functools.update_wrapper(app, cls, updated=())
        return app

    @classmethod
    def _init_keywords(cls) -> frozenset:
        """The keyword parameters of the ``__init__`` chain above hubbub's own (followed through ``**kwargs``)."""
        names = set()
        for klass in cls.__mro__:
            init = klass.__dict__.get("__init__")
            if init is None:
                continue
            if klass is AsyncConsumer or klass is object:
                break
            try:
                parameters = inspect.signature(init).parameters.values()
            except (TypeError, ValueError):  # a builtin or C __init__: nothing to read
                break
            names.update(p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
            if not any(p.kind is p.VAR_KEYWORD for p in parameters):
                break
        names.discard("self")
        return frozenset(names)

    _accepted = False  # a WebSocket handshake was accepted (so an error closes with 1011)
    outbox: Optional[Outbox] = None  # a WebSocket's outgoing buffer
    _ending: Optional[asyncio.Task] = None  # the disconnect of a client too slow to keep up

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.scope = scope
        protocol = scope["type"]
        if protocol == "websocket":
            self._context = contextvars.copy_context()  # see _slow_client
            tcp_user_timeout.install()  # once per process: stalled clients get cut off
            self.outbox = Outbox(send, self.outbox_max_messages, self.outbox_max_bytes, self.outbox_policy,
                                 self._slow_client, self._stop_with, scope)
            send = self.outbox.send
        else:
            send = metrics.counting_send(send)
        self.base_send = async_to_sync(send) if self._sync else send
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        if self.channel_layer is not None:
            metrics.instrument_layer(self.channel_layer)
            self.channel_name = await self.channel_layer.new_channel()
            self.channel_receive = functools.partial(self.channel_layer.receive, self.channel_name)
        self._interrupt: Optional[BaseException] = None
        self._dispatch_lock = asyncio.Lock()
        self._main_task = asyncio.current_task()
        listener = None
        error: Optional[Exception] = None
        metrics.connections_total.inc(protocol)
        metrics.connections_open.inc(protocol)  # from here on, the finally clause counts it out
        try:
            if self.channel_layer is not None:
                listener = asyncio.get_running_loop().create_task(self._listen(self.channel_receive))
            dispatch_lock = self._dispatch_lock
            messages_in = metrics.messages_in
            while True:
                message = await receive()
                messages_in.inc(message.get("type"))
                async with dispatch_lock:
                    try:
                        await self.dispatch(message)
                    except exceptions.ChannelLayerUnavailable as exc:
                        _layer_unavailable(self, message, exc)
        except asyncio.CancelledError:
            if self._interrupt is None:
                raise
            if not isinstance(self._interrupt, StopConsumer):
                if isinstance(self._interrupt, Exception):
                    error = self._interrupt
                raise self._interrupt
        except StopConsumer:
            pass
        except Exception as exc:
            error = exc
            if not self._refuses_handshake(exc):
                raise
            logger.warning(
                "WebSocket %r refused (403): group name %r is not valid (ASCII letters, digits, '-', '_' and '.' only, "
                "under %d characters).", scope.get("path"), getattr(exc, "name", None), BaseChannelLayer.MAX_NAME_LENGTH,
            )
        finally:
            if listener is not None:
                listener.cancel()
                await asyncio.gather(listener, return_exceptions=True)  # its channel is released now
            await leave_all_if_used(self)
            await self._teardown()
            if error is not None:
                await self._close_after_error(send, error)
            if self._ending is not None:
                self._ending.cancel()
            if self.outbox is not None:
                await self.outbox.flush()
            metrics.connections_open.dec(protocol)

    async def _listen(self, channel_receive: Callable[[], Awaitable[Message]]) -> None:
        """Dispatch messages arriving on this consumer's channel until cancelled."""
        messages_in = metrics.messages_in
        try:
            while True:
                message = await channel_receive()
                messages_in.inc(message.get("type"))
                async with self._dispatch_lock:
                    try:
                        await self.dispatch(message)
                    except exceptions.ChannelLayerUnavailable as exc:
                        _layer_unavailable(self, message, exc)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # StopConsumer or a handler's error: end the consumer
            self._stop_with(exc)

    def _stop_with(self, exc: BaseException) -> None:
        """End the consumer from a task other than the main one, re-raising ``exc`` there."""
        if self._interrupt is None:
            self._interrupt = exc
            if self._main_task is not None:
                self._main_task.cancel()

    def _slow_client(self) -> None:
        """The outbox overflowed under the "close" policy: end as if the client had left (1013).

        The disconnect runs in a task made in the connection's own context: the send that
        overflowed may come from a sync handler's thread, whose asgiref context would
        route the disconnect handler to that thread after it has moved on.
        """
        loop = asyncio.get_running_loop()
        self._ending = self._context.run(loop.create_task, self._disconnect(TRY_AGAIN_LATER))

    async def _disconnect(self, code: int) -> None:
        """Dispatch a ``websocket.disconnect`` the server did not send, then end the consumer."""
        try:
            async with self._dispatch_lock:
                await self.dispatch({"type": "websocket.disconnect", "code": code})
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # StopConsumer, as websocket_disconnect raises, or a handler's error
            self._stop_with(exc)
            return
        self._stop_with(StopConsumer())

    async def _close_after_error(self, send: Send, exc: Exception) -> None:
        """Tell a WebSocket client that the server failed (1011) rather than drop the TCP connection.

        Servers close the socket without a close frame when the application raises;
        the client then sees 1006 and cannot tell a crash from a network fault. An
        ``OSError`` here means the client is already gone: there is nobody to tell.
        """
        if self._refuses_handshake(exc):
            await send({"type": "websocket.close", "code": 1008})  # before accept: the server answers 403
            return
        if not self._accepted or isinstance(exc, OSError):
            return
        try:
            await send({"type": "websocket.close", "code": 1011})
        except Exception:  # already closed, or the client went away meanwhile
            pass

    def _refuses_handshake(self, exc: Exception) -> bool:
        """A group name the layer refused before the WebSocket was accepted (a room called ``Café Paris``).

        The handshake is refused (403) with one WARNING rather than answered 500 with a traceback.
        """
        return isinstance(exc, InvalidGroupName) and self.scope["type"] == "websocket" and not self._accepted

    async def _teardown(self) -> None:
        """Hook for subclasses: release what the connection held, however it ended."""

    async def dispatch(self, message: Message) -> None:
        """Call the handler ``message['type']`` names; without one, see ``_no_handler``."""
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            return self._no_handler(message)
        await handler(message)

    def _no_handler(self, message: Message) -> None:
        """No method for ``message``: skip one of hubbub's own events, else ``ValueError`` as in Channels.

        A group can hold a plain consumer and a hubbub.js page at once (a presence join,
        a pub/sub message): those events are for consumers that use the feature, and must
        not close one that does not. An application's own type still raises.
        """
        if message["type"] not in HUBBUB_EVENT_TYPES:
            raise ValueError(f"No handler for message type {message['type']!r} on {type(self).__name__}")

    async def send(self, message: Message) -> None:
        """Send an ASGI message to the client's server."""
        if message["type"] == "websocket.accept":
            self._accepted = True
        await self.base_send(message)


class SyncConsumer(AsyncConsumer):
    """Consumer whose handlers are plain functions, run in a thread with database hygiene."""

    _sync = True

    @database_sync_to_async
    def dispatch(self, message: Message) -> None:  # type: ignore[override]
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            return self._no_handler(message)
        handler(message)

    def send(self, message: Message) -> None:  # type: ignore[override]
        """Send an ASGI message (blocks this thread until the server has it)."""
        if message["type"] == "websocket.accept":
            self._accepted = True
        self.base_send(message)


#: A handler stopped by a channel layer outage: one line per consumer class and message type per interval.
_unavailable_log = RateLimitedLog(logging.getLogger("hubbub.consumer"))


def _layer_unavailable(consumer: Any, message: Message, exc: Exception) -> None:
    """A handler's send found the channel layer down: the handler stops there, the connection stays open.

    The layer has already counted the lost message and logged the outage once.
    """
    name, kind = type(consumer).__name__, message.get("type")
    _unavailable_log.log((name, kind), "%s's handler for %r stopped: %s", name, kind, exc)

"""Consumers: one instance per connection, turning ASGI and layer messages into method calls.

Theory of operation. A consumer reads two sources: the server's ``receive`` and, when
a channel layer is configured, its own channel on that layer. The task the server
runs the application in reads ``receive`` and dispatches directly; a second,
long-lived task reads the channel. A lock makes handlers run one at a time, as in
Channels, and costs nothing when uncontended. Nothing is created per message: no
task, no ``asyncio.wait``, no thread hop (database connections are looked after by
``database_sync_to_async`` around the code that uses them, not around every message).
What is particular to a protocol lives in its connection object
(``hubbub.connection``: a WebSocket's outbox, handshake state and 1011 close are in
``hubbub.websocket_state``), and features such as metrics and presence attach through
connection hooks; the base reads as: open, run, finish.

The run is a group of tasks (``hubbub.consumer_tasks``): the main task reads ``receive``,
the listener and any task a connection or handler starts (``_start_soon``) run beside it.
The first of them to raise (``StopConsumer`` included) cancels the others and ends the
consumer, so an error in a group message handler ends the connection exactly as one in a
receive handler does.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ClassVar

from asgiref.sync import async_to_sync

from . import DEFAULT_CHANNEL_LAYER, exceptions
from .backpressure import check_limits
from .connection import Hooks, ProtocolConnection, hooks, open_connection
from .consumer_tasks import ConsumerTasks
from .db import aclose_old_connections, database_sync_to_async
from .exceptions import StopConsumer
from .layers import BaseChannelLayer, get_channel_layer
from .presence import PresenceAttribute
from .ratelog import RateLimitedLog
from .typing import ASGIApp, Message, Receive, Scope, Send
from .utils import await_many_dispatch  # re-exported, as Channels does

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

_handler_names: dict[str, str] = {}

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
        raise ValueError(f"Incoming message has no 'type' key: {message!r}") from None
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

    channel_layer: BaseChannelLayer | None
    channel_name: str
    #: The server's ``send`` for an async consumer; for a sync one, a wrapper that blocks until it is done.
    base_send: Callable[[Message], Any]
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
        settings = {
            "outbox_max_messages": cls.outbox_max_messages,
            "outbox_max_bytes": cls.outbox_max_bytes,
            "outbox_policy": cls.outbox_policy,
            **initkwargs,
        }
        check_limits(
            settings["outbox_max_messages"], settings["outbox_max_bytes"], settings["outbox_policy"], cls.__name__
        )

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            consumer = cls(**initkwargs)
            return await consumer(scope, receive, send)

        app.consumer_class = cls  # type: ignore[attr-defined]
        app.consumer_initkwargs = initkwargs  # type: ignore[attr-defined]
        functools.update_wrapper(app, cls, updated=())
        return app

    @classmethod
    def _init_keywords(cls) -> frozenset[str]:
        """The keyword parameters of the ``__init__`` chain above hubbub's own (followed through ``**kwargs``)."""
        names: set[str] = set()
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

    outbox: Any = None  # a WebSocket's outgoing buffer (hubbub.backpressure), set by its connection
    _connection: ProtocolConnection  # the protocol's side of the connection: see hubbub.connection
    _tasks: ConsumerTasks | None = None  # while the consumer runs: its tasks (hubbub.consumer_tasks)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.scope = scope
        self._connection = open_connection(self, scope, send)
        self.base_send = async_to_sync(self._connection.send) if self._sync else self._connection.send
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        if self.channel_layer is not None:
            self.channel_name = await self.channel_layer.new_channel()
            self.channel_receive = functools.partial(self.channel_layer.receive, self.channel_name)
        self._dispatch_lock = asyncio.Lock()
        features = hooks()
        for opened in features.opened:
            opened(self)  # from here on, _finish runs the closed hooks
        error: Exception | None = None
        answered = False
        try:
            await self._run(receive, features)
        except StopConsumer:
            pass
        except Exception as exc:
            error = exc
        finally:
            answered = await self._finish(features, error)
        if error is not None and not answered:
            raise error

    async def _run(self, receive: Receive, features: Hooks) -> None:
        """Read ``receive`` here and the channel in a task beside it, until one of them ends the consumer."""
        tasks = self._tasks = ConsumerTasks()
        try:
            async with tasks:
                if self.channel_layer is not None:
                    tasks.start_soon(self._listen, self.channel_receive, features.message_in)
                dispatch_lock = self._dispatch_lock
                message_in = features.message_in
                while True:
                    message = await receive()
                    message_in(message.get("type"))
                    async with dispatch_lock:
                        try:
                            await self.dispatch(message)
                        except exceptions.ChannelLayerUnavailable as exc:
                            _layer_unavailable(self, message, exc)
        finally:
            self._tasks = None
            stopped = getattr(self._connection, "stopped", None)  # a protocol's hook (the WebSocket's fastlane)
            if stopped is not None:
                stopped()
        if tasks.errors:
            raise _ending_of(tasks.errors)  # outside any except clause: its cause and context stay its own

    async def _listen(
        self, channel_receive: Callable[[], Awaitable[Message]], message_in: Callable[[Any], None]
    ) -> None:
        """Dispatch messages arriving on this consumer's channel until cancelled."""
        while True:
            message = await channel_receive()
            message_in(message.get("type"))
            async with self._dispatch_lock:
                try:
                    await self.dispatch(message)
                except exceptions.ChannelLayerUnavailable as exc:
                    _layer_unavailable(self, message, exc)

    def _start_soon(self, func: Callable[..., Coroutine[Any, Any, Any]], *args: Any) -> bool:
        """Run ``func(*args)`` beside the consumer: if it raises (``StopConsumer`` too), the consumer ends with that.

        False, and nothing started, once the consumer has stopped running.
        """
        tasks = self._tasks
        if tasks is None:
            return False
        tasks.start_soon(func, *args)
        return True

    async def _finish(self, features: Hooks, error: Exception | None) -> bool:
        """Let features and the subclass release what the connection held, then the protocol have the last word.

        True if the protocol answered ``error`` itself, so it must not reach the server.
        """
        for closed in features.closed:
            await closed(self)
        await self._teardown()
        return await self._connection.finish(error)

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
        self.base_send(message)


#: A handler stopped by a channel layer outage: one line per consumer class and message type per interval.
_unavailable_log = RateLimitedLog(logging.getLogger("hubbub.consumer"))


def _layer_unavailable(consumer: Any, message: Message, exc: Exception) -> None:
    """A handler's send found the channel layer down: the handler stops there, the connection stays open.

    The layer has already counted the lost message and logged the outage once.
    """
    name, kind = type(consumer).__name__, message.get("type")
    _unavailable_log.log((name, kind), "%s's handler for %r stopped: %s", name, kind, exc)


def _ending_of(errors: list[BaseException]) -> BaseException:
    """The exception that ends the consumer: the first error of its tasks, else their ``StopConsumer``."""
    for exc in errors:
        if not isinstance(exc, StopConsumer):
            return exc
    return errors[0]


# The built-in protocol and features attach themselves to every connection (hubbub.connection).
from . import metrics, presence, websocket_state  # noqa: E402,F401,I001

"""The fastlane: a group message whose handler only forwards it is written without waking its consumer.

Theory of operation. A handler declared as a *forward* (``chat_message = forward_text("text")``)
is an ordinary handler on an instance: dispatched by the listener, it checks ``accept`` and
sends through the consumer's own ``send``/``send_json``. When the WebSocket is accepted, its
connection (``hubbub.websocket_state``) also attaches a *sink* to the consumer's channel on a
layer offering the "fastlane" extension (``attach_direct``). The layer offers the sink each
message for that channel that would otherwise wake the consumer's idle listener right now;
the sink either takes it (True: the listener is not woken, and keeps waiting) or leaves it
to the normal path (False). Taking it means: count it as dispatched (the ``message_in``
hooks, as the listener would), run ``accept``, and push the frame to the outbox with no
await (``Outbox.push``/``push_prepared``). One ``group_send`` in this process hands every
member the same message dict, so the frame is built once per fan-out and consumer class:
each forward keeps, per class, the last message it rendered and the frame it made, and
keeps a reference to that message so that its identity cannot be reused by another one.

Why the order is kept. The sink refuses while the consumer's dispatch lock is held. Handlers
run one at a time under that lock; a message the layer offers while a handler runs (one
awaiting between two sends, a sync handler in its thread) would otherwise overtake the
frames that handler has yet to send. Refused, it goes to the listener, which waits for the
lock, and the messages after it queue in the channel behind it: the layer offers the sink
only messages whose receiver is waiting with nothing queued, so nothing the sink takes can
overtake a message already on its way through the listener. The sink also refuses once the
connection is no longer OPEN or the consumer has stopped running, and for message types
without a forward.

What "identical" means. For every message, the fast path does what the forward's handler
would do on the normal path: the same frames (bytes, type, order) reach the client; the
same counters move in ``hubbub.metrics`` (``messages_in`` by the message's type,
``messages_out`` by ``websocket.send``, drops); the outbox's bounds and policy (the 1013
cut-off of a slow client) apply to the pushed frame; a closed connection discards it.
Whatever might differ takes the normal path instead: a class overriding ``send``,
``send_json`` or ``base_send``; an ``encode_json`` that is not a class or static method, or
an async one that suspends when stepped once (that class keeps the normal path for good);
a payload of the wrong type for its frame; a ``build`` or ``accept`` that raises (the
handler then raises it again). ``build`` must be a pure function of the event and ``accept``
must not change the event: both run where the sink does, in the sender's task.

The switch: the Django setting ``HUBBUB_FASTLANE`` (default True); the environment variable
``HUBBUB_FASTLANE=0``/``1`` overrides it (to run a test suite on the normal path). It is read
when a connection is accepted.
"""

from __future__ import annotations

import importlib
import inspect
import os
import weakref
from collections.abc import Awaitable, Callable
from types import MethodType
from typing import Any, Literal

from .typing import Message

__all__ = ["Forward", "Sink", "enabled", "forward_bytes", "forward_json", "forward_table", "forward_text", "make_sink"]

#: What a layer's ``attach_direct`` takes: True if the message was delivered.
Sink = Callable[[Message], bool]
Kind = Literal["text", "bytes", "json"]
Accept = Callable[[Any, Message], Any]


def enabled() -> bool:
    """Whether the fastlane is on: ``HUBBUB_FASTLANE`` in the environment, else the Django setting (default on)."""
    value = os.environ.get("HUBBUB_FASTLANE")
    if value is not None and value.strip():
        return value.strip().lower() not in ("0", "false", "no", "off")
    from django.conf import settings

    return bool(getattr(settings, "HUBBUB_FASTLANE", True)) if settings.configured else True


class Forward:
    """A handler sending (part of) the event as one frame: see ``forward_text``, ``forward_bytes``, ``forward_json``."""

    __slots__ = ("kind", "key", "build", "accept", "name", "_async", "_sync")

    def __init__(self, kind: Kind, key: str | None, build: Callable[[Message], Any] | None, accept: Accept | None):
        if (key is None) == (build is None):
            raise TypeError(f"forward_{kind}() takes an event key or build=, exactly one of them")
        if key is not None and not isinstance(key, str):
            raise TypeError(f"forward_{kind}(): the event key must be a str, got {key!r}")
        for what, value in (("build", build), ("accept", accept)):
            if value is not None and not callable(value):
                raise TypeError(f"forward_{kind}(): {what}= must be callable, got {value!r}")
        if accept is not None and inspect.iscoroutinefunction(accept):
            raise TypeError(f"forward_{kind}(): accept= must be a plain function (consumer, event) -> bool")
        self.kind, self.key, self.build, self.accept = kind, key, build, accept
        self.name = ""
        payload = self.payload

        if kind == "json":

            async def handle_async(consumer: Any, event: Message) -> None:
                if accept is None or accept(consumer, event):
                    await consumer.send_json(payload(event))

            def handle_sync(consumer: Any, event: Message) -> None:
                if accept is None or accept(consumer, event):
                    consumer.send_json(payload(event))

        else:
            argument = "text_data" if kind == "text" else "bytes_data"

            async def handle_async(consumer: Any, event: Message) -> None:
                if accept is None or accept(consumer, event):
                    await consumer.send(**{argument: payload(event)})

            def handle_sync(consumer: Any, event: Message) -> None:
                if accept is None or accept(consumer, event):
                    consumer.send(**{argument: payload(event)})

        self._async: Callable[[Any, Message], Awaitable[None]] = handle_async
        self._sync: Callable[[Any, Message], None] = handle_sync

    def payload(self, event: Message) -> Any:
        """What the handler sends for ``event``: ``event[key]``, or ``build(event)``."""
        build = self.build
        return event[self.key] if build is None else build(event)  # type: ignore[index]

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        return MethodType(self._sync if getattr(instance, "_sync", False) else self._async, instance)

    def __repr__(self) -> str:
        what = repr(self.key) if self.key is not None else "build=..."
        return f"<forward_{self.kind}({what}{', accept=...' if self.accept else ''}) {self.name}>"


def forward_text(
    key: str | None = None, *, build: Callable[[Message], str] | None = None, accept: Accept | None = None
) -> Forward:
    """Handler sending ``event[key]`` (or ``build(event)``) as a text frame, if ``accept(consumer, event)``."""
    return Forward("text", key, build, accept)


def forward_bytes(
    key: str | None = None, *, build: Callable[[Message], bytes] | None = None, accept: Accept | None = None
) -> Forward:
    """Handler sending ``event[key]`` (or ``build(event)``) as a binary frame, if ``accept(consumer, event)``."""
    return Forward("bytes", key, build, accept)


def forward_json(
    key: str | None = None, *, build: Callable[[Message], Any] | None = None, accept: Accept | None = None
) -> Forward:
    """Handler doing ``send_json(event[key])`` (or ``send_json(build(event))``), if ``accept(consumer, event)``."""
    return Forward("json", key, build, accept)


class Frame:
    """One fan-out's frame for one consumer class: the message it was made from, and the frame."""

    __slots__ = ("event", "message", "_prepared")

    def __init__(self, event: Message, message: Message):
        self.event, self.message = event, message  # the event is held: its id cannot be reused meanwhile
        self._prepared: Any = None

    def prepared(self) -> Any:
        """The ``hubbub.frames.PreparedFrame`` of the message, encoded once for the whole fan-out."""
        frame = self._prepared
        if frame is None:
            frames = importlib.import_module("hubbub.frames")  # the server side's module (issue 13)
            frame = self._prepared = frames.prepare(self.message)
        return frame


class Lane:
    """One forward on one consumer class: its frame cache (one entry) and how frames are made."""

    __slots__ = ("forward", "table", "last")

    def __init__(self, forward: Forward, table: ForwardTable):
        self.forward, self.table = forward, table
        self.last: Frame | None = None

    def frame(self, event: Message) -> Frame | None:
        """The frame for ``event``, cached on its identity; None when this class must take the normal path."""
        last = self.last  # one read: another thread's loop may swap it meanwhile
        if last is not None and last.event is event:
            return last
        forward = self.forward
        payload = forward.payload(event)
        if forward.kind == "json":
            payload = self.table.encode(payload)
            if payload is None:
                return None
        if forward.kind == "bytes":
            if type(payload) is not bytes:
                return None
            message: Message = {"type": "websocket.send", "bytes": payload}
        else:
            if type(payload) is not str:
                return None
            message = {"type": "websocket.send", "text": payload}
        last = self.last = Frame(event, message)
        return last


def _static(cls: type, name: str) -> Any:
    """``cls``'s attribute ``name`` as its MRO defines it (no descriptor applied), or None."""
    for klass in cls.__mro__:
        if name in klass.__dict__:
            return klass.__dict__[name]
    return None


class ForwardTable:
    """A consumer class's forwards by message type, and whether its sends may be bypassed."""

    def __init__(self, cls: type):
        from .generic.websocket import (
            AsyncJsonWebsocketConsumer,
            AsyncWebsocketConsumer,
            JsonWebsocketConsumer,
            WebsocketConsumer,
        )

        self.lanes: dict[str, Lane] = {}
        self._by_type: dict[str, Lane | None] = {}
        names = {name for klass in cls.__mro__ for name, value in vars(klass).items() if isinstance(value, Forward)}
        for name in sorted(names):
            value = _static(cls, name)
            if isinstance(value, Forward) and not name.startswith("_"):
                self.lanes[name] = Lane(value, self)
        sync = bool(getattr(cls, "_sync", False))
        base, json_base = (
            (WebsocketConsumer, JsonWebsocketConsumer) if sync else (AsyncWebsocketConsumer, AsyncJsonWebsocketConsumer)
        )
        #: Whether the class sends frames as the base class does (else every forward takes the normal path).
        self.sends = _static(cls, "send") is base.__dict__["send"] and all(
            "base_send" not in vars(k) for k in cls.__mro__
        )
        #: Whether its JSON forwards may take the fastlane (False for good once ``encode_json`` suspends).
        self.json = (
            self.sends
            and _static(cls, "send_json") is json_base.__dict__["send_json"]
            and isinstance(_static(cls, "encode_json"), (classmethod, staticmethod))
        )
        #: The class's ``encode_json``, while it may be run in place.
        self.encoder: Callable[[Any], Any] | None = getattr(cls, "encode_json", None) if self.json else None
        self._async_encoder = not sync

    def __bool__(self) -> bool:
        """Whether any forward of the class may take the fastlane."""
        return self.sends and any(lane.forward.kind != "json" or self.json for lane in self.lanes.values())

    def lane(self, kind: Any) -> Lane | None:
        """The lane of message type ``kind``, or None when that type has no forward (or cannot take the fastlane)."""
        try:
            return self._by_type[kind]
        except KeyError:
            pass
        except TypeError:  # an unhashable type: the normal path reports it
            return None
        lane = self.lanes.get(kind.replace(".", "_")) if isinstance(kind, str) and self.sends else None
        if lane is not None and lane.forward.kind == "json" and not self.json:
            lane = None
        if len(self._by_type) < 1024:
            self._by_type[kind] = lane
        return lane

    def encode(self, content: Any) -> str | None:
        """``encode_json(content)`` run in place; None (and the class keeps the normal path) if it would suspend."""
        encoder = self.encoder
        if encoder is None:
            return None
        if not self._async_encoder:
            text: Any = encoder(content)
            return text if type(text) is str else None
        coroutine = encoder(content)
        if not inspect.iscoroutine(coroutine):  # not awaitable as send_json would: its error is the handler's
            self.encoder = None
            return None
        try:
            coroutine.send(None)
        except StopIteration as done:
            return done.value if type(done.value) is str else None
        coroutine.close()
        self.encoder = None  # it suspends: user code must run in the consumer, for every frame from now on
        self._by_type.clear()
        self.json = False
        return None


_tables: weakref.WeakKeyDictionary[type, ForwardTable] = weakref.WeakKeyDictionary()


def forward_table(cls: type) -> ForwardTable:
    """The forward table of consumer class ``cls``, computed once."""
    table = _tables.get(cls)
    if table is None:
        table = _tables[cls] = ForwardTable(cls)
    return table


def make_sink(consumer: Any, connection: Any, table: ForwardTable, message_in: Callable[[Any], None]) -> Sink:
    """The sink of one accepted WebSocket consumer (see the module docstring for what it takes)."""
    from .websocket_state import WebSocketState

    lock = consumer._dispatch_lock
    outbox = connection.outbox
    opened = WebSocketState.OPEN
    prepared = outbox.prepared_write is not None
    lane_of = table.lane

    def sink(message: Message) -> bool:
        if lock.locked() or connection.state is not opened or consumer._tasks is None:
            return False
        kind = message.get("type")
        lane = lane_of(kind)
        if lane is None:
            return False
        try:
            frame = lane.frame(message)
            if frame is None:
                return False
            if prepared:
                ready = frame.prepared()
            accept = lane.forward.accept
            taken = accept is None or accept(consumer, message)
        except Exception:  # the handler meets it again on the normal path, and raises it there
            return False
        message_in(kind)
        if taken:
            try:
                if prepared:
                    outbox.push_prepared(ready)
                else:
                    outbox.push(frame.message)
            except Exception as exc:  # as if the handler's send had raised it
                connection._send_failed(exc)
        return True

    return sink

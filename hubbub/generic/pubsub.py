"""Ready-made publish/subscribe endpoints for browsers: a WebSocket consumer and an SSE stream.

Route them and any page can use ``hubbub.js``::

    websocket: path("ws/pubsub/", PubSubConsumer.as_asgi())
    http:      path("pubsub/events/", PubSubEventStream.as_asgi())

Protocol (JSON objects with a ``type``). Client → server: ``subscribe {group, since?:
{epoch, offset}, presence?: info}``, ``unsubscribe {group}``, ``publish {group, data}``,
``presence {group}`` (list the members), ``ping``. Server → client: ``message {group,
data, epoch, offset}``, ``subscribed {group, epoch, offset, recovered, missed}``,
``unsubscribed {group}``, ``join``/``leave {group, member}``, ``presence {group,
members}``, ``pong``, ``error {code, message, group?}``. Bad input gets an ``error``
and the connection stays open; a frame that cannot be read at all (binary, over
``max_frame_bytes``, nested over ``max_json_depth``, not JSON) is also logged, one
rate-limited line (see hubbub.refusals).

Recovery without loss or duplicates. A subscribe adds the channel to the group
*first*, then asks the layer what the client missed since its ``(epoch, offset)``,
sends that (before ``subscribed``, whose ``missed`` counts it), and remembers the
group's latest offset. Live messages that arrived meanwhile wait in the channel and
are then skipped when their offset is not past the one remembered. When the gap is
no longer in history, ``subscribed`` says ``recovered: false`` and the client should
reload its state; it is then positioned at the latest offset like a new subscriber.

Server code sends to subscribers with ``await publish(group, data)`` (or a
``group_send`` of ``{"type": "pubsub.message", "group": group, "data": data}``).
Permission hooks decide per group: ``can_subscribe(group)`` and ``can_publish(group)``
(both allow everything by default: override them for anything private).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
from typing import Any, ClassVar, cast
from urllib.parse import parse_qs

from .. import metrics
from ..fastlane import forward_json
from ..history import HistoryAnswer
from ..jsonbounds import MAX_JSON_DEPTH, nesting_exceeds
from ..layers import BaseChannelLayer, get_channel_layer
from ..refusals import log_refused_frame
from ..typing import Message
from .http import AsyncHttpConsumer
from .websocket import AsyncJsonWebsocketConsumer

__all__ = ["PubSubConsumer", "PubSubEventStream", "ProtocolError", "publish"]

logger = logging.getLogger("hubbub.pubsub")

# A protocol frame or POST body larger than this is refused (daphne allows 1 MiB frames;
# pub/sub payloads are meant to be small, and every byte is copied to every subscriber).
MAX_FRAME_BYTES = 64 * 1024


def decode_request(text: str | bytes, max_depth: int | None, what: str = "frame") -> Any:
    """A client's JSON frame or body decoded, or ``ProtocolError`` (``too_deep``, ``bad_json``).

    Any exception from decoding is a bad request, ``RecursionError`` included: the depth
    is checked first (see hubbub.jsonbounds), so only a custom bound can still reach it.
    """
    if max_depth is not None and nesting_exceeds(
        text if isinstance(text, str) else text.decode("utf-8", "replace"), max_depth
    ):
        raise ProtocolError("too_deep", f"JSON nested more than {max_depth} deep")
    try:
        return json.loads(text)
    except Exception:
        raise ProtocolError("bad_json", f"{what} is not valid JSON") from None


async def publish(group: str, data: Any, *, layer: BaseChannelLayer | None = None) -> None:
    """Send ``data`` (JSON-serialisable) to the pub/sub subscribers of ``group``, from any server code."""
    layer = layer or get_channel_layer()
    if layer is None:
        raise RuntimeError("publish() needs a channel layer: CHANNEL_LAYERS has none")
    await layer.group_send(group, {"type": "pubsub.message", "group": group, "data": data})


class ProtocolError(Exception):
    """A client request the protocol refuses; becomes an ``error`` frame (or an HTTP status for SSE)."""

    def __init__(self, code: str, message: str, group: str | None = None, status: int = 400):
        super().__init__(message)
        self.code, self.message, self.group, self.status = code, message, group, status

    def frame(self) -> dict[str, Any]:
        frame: dict[str, Any] = {"type": "error", "code": self.code, "message": self.message}
        if self.group is not None:
            frame["group"] = self.group
        return frame


class _Position:
    """Where one subscriber is in a group's numbered stream: the last (epoch, offset) it was sent."""

    __slots__ = ("epoch", "offset")

    def __init__(self, epoch: str | None, offset: int):
        self.epoch, self.offset = epoch, offset

    def advance(self, event: Message) -> bool:
        """True if ``event`` is new to this subscriber (and move past it); False for one already sent."""
        offset = event.get("_offset")
        if offset is None:  # a group without history: nothing to compare
            return True
        epoch = event.get("_epoch")
        if epoch == self.epoch and offset <= self.offset:
            return False
        self.epoch, self.offset = epoch, offset
        return True


def message_frame(event: Message) -> dict[str, Any]:
    """The client frame for a ``pubsub.message`` (epoch and offset are None without history)."""
    return {
        "type": "message",
        "group": event["group"],
        "data": event.get("data"),
        "epoch": event.get("_epoch"),
        "offset": event.get("_offset"),
    }


def _new_to_subscriber(consumer: Any, event: Message) -> bool:
    """A ``pubsub.message`` goes to a subscriber of its group that has not had it (see ``_Position``)."""
    position = consumer.subscriptions.get(event.get("group"))
    return position is not None and bool(position.advance(event))


def _subscribed(consumer: Any, event: Message) -> bool:
    return event["group"] in consumer.subscriptions


def _member_frame(kind: str, event: Message) -> dict[str, Any]:
    """The client frame for a ``presence.join``/``presence.leave``."""
    return {"type": kind, "group": event["group"], "member": event["member"]}


def parse_since(since: Any, group: str) -> tuple[str | None, int]:
    """``{epoch, offset}`` from a client → ``(epoch, offset)``; None → a new subscriber."""
    if since is None:
        return None, 0
    if isinstance(since, dict):
        epoch, offset = since.get("epoch"), since.get("offset")
        if epoch is None and offset in (None, 0):
            return None, 0
        if isinstance(epoch, str) and isinstance(offset, int) and not isinstance(offset, bool) and offset >= 0:
            return epoch, offset
    raise ProtocolError("bad_since", "since must be {epoch: string, offset: integer >= 0}", group)


_EVENT_ID = re.compile(r"(.{1,100}):([0-9]{1,18})\Z", re.DOTALL)  # ASCII digits: int() takes others too


def parse_event_id(event_id: str, group: str) -> tuple[str | None, int]:
    """An SSE ``Last-Event-ID`` (``<epoch>:<offset>``) → ``(epoch, offset)``; empty → a new subscriber."""
    if not event_id:
        return None, 0
    match = _EVENT_ID.match(event_id)
    if match is None:
        raise ProtocolError("bad_since", f"Last-Event-ID must be <epoch>:<offset>, got {event_id[:100]!r}", group)
    return match[1], int(match[2])


_skipped: set[tuple[str, str]] = set()  # (endpoint class, message type) already logged


def skip_unknown_event(consumer: Any, message: Message) -> None:
    """Skip a group message type this endpoint does not handle, logging it once per type.

    A group may also hold other consumers (the tutorial's ``chat.message`` sent to a group
    a page subscribes to): their messages are not for the pub/sub protocol, and must not
    close its connections.
    """
    key = (type(consumer).__qualname__, str(message["type"])[:100])
    if key in _skipped:
        return
    if len(_skipped) < 1000:  # bounded: the types come from application code, but still
        _skipped.add(key)
    logger.warning(
        "%s skips group messages of type %r (not part of the pub/sub protocol); logged once per type", key[0], key[1]
    )


class _GroupAccess:
    """Group-name checks and the permission hooks both endpoints share."""

    channel_layer: BaseChannelLayer | None

    async def can_subscribe(self, group: str) -> bool:
        """May this connection receive ``group``'s messages? (Default: yes.)"""
        return True

    async def can_publish(self, group: str) -> bool:
        """May this connection send messages to ``group``? (Default: yes.)"""
        return True

    @property
    def _layer(self) -> BaseChannelLayer:
        if self.channel_layer is None:
            raise RuntimeError(f"{type(self).__name__} needs a channel layer: CHANNEL_LAYERS has none")
        return self.channel_layer

    def checked_group(self, content: dict[str, Any]) -> str:
        """``content["group"]`` if it is a valid group name, else a ``bad_group`` error."""
        group = content.get("group")
        try:
            self._layer.require_valid_group_name(group)
        except TypeError:
            raise ProtocolError(
                "bad_group", "group must be a string of under 100 ASCII letters, digits, '-', '_' or '.'"
            ) from None
        return cast(str, group)  # require_valid_group_name accepts only a str

    async def join_and_replay(
        self, group: str, epoch: str | None, since: int, presence: bool, info: Any
    ) -> tuple[_Position, HistoryAnswer]:
        """Join ``group`` (as a present member if asked), then fetch what was missed since ``(epoch, since)``."""
        if not await self.can_subscribe(group):
            raise ProtocolError("forbidden", "not allowed to subscribe to this group", group, status=403)
        if presence:
            await self.presence.join(group, info)  # type: ignore[attr-defined]
        else:
            await self._layer.group_add(group, self.channel_name)  # type: ignore[attr-defined]
        history = await self._layer.group_history(group, epoch=epoch, since=since)
        if epoch is not None:  # a client resuming: count whether its gap was still held
            metrics.recoveries.inc("recovered" if history["recovered"] else "gap")
        return _Position(history["epoch"], history["offset"]), history

    async def handle_publish(self, content: Any) -> None:
        """Check and send a client's ``{group, data}``."""
        if not isinstance(content, dict) or "data" not in content:
            raise ProtocolError("bad_message", "publish needs {group, data}")
        group = self.checked_group(content)
        if not await self.can_publish(group):
            raise ProtocolError("forbidden", "not allowed to publish to this group", group, status=403)
        await publish(group, content["data"], layer=self._layer)


def subscribed_frame(group: str, history: HistoryAnswer) -> dict[str, Any]:
    """The ``subscribed`` frame for a ``group_history`` answer (``missed``: how many were replayed)."""
    return {
        "type": "subscribed",
        "group": group,
        "epoch": history["epoch"],
        "offset": history["offset"],
        "recovered": history["recovered"],
        "missed": len(history["messages"]),
    }


class PubSubConsumer(_GroupAccess, AsyncJsonWebsocketConsumer):
    """WebSocket endpoint of the pub/sub protocol (see the module docstring)."""

    groups: list[str]  # never None here: __init__ starts it empty and subscriptions add to it

    max_frame_bytes: ClassVar[int] = MAX_FRAME_BYTES
    #: Deepest nesting of arrays/objects a frame may have (see hubbub.jsonbounds).
    max_json_depth: int | None = MAX_JSON_DEPTH
    #: Subscriptions one connection may hold at once.
    max_subscriptions: ClassVar[int] = 100

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.groups = list(self.groups or [])  # subscriptions are added: never to a class-level list
        self.subscriptions: dict[str, _Position] = {}

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any) -> None:
        try:
            content = self.decoded(text_data)
        except ProtocolError as error:
            log_refused_frame(self, error.code, error.message)
            return await self.send_error(error)
        await self.receive_json(content)

    def decoded(self, text_data: str | None) -> Any:
        """The frame's JSON, or the ``ProtocolError`` that answers it (the connection stays open)."""
        if text_data is None:
            raise ProtocolError("bad_frame", "binary frames are not part of the protocol")
        if len(text_data) > self.max_frame_bytes or len(text_data.encode()) > self.max_frame_bytes:
            raise ProtocolError("too_large", f"frames are limited to {self.max_frame_bytes} bytes")
        return decode_request(text_data, self.max_json_depth)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        """Run the request method ``content["type"]`` names; a refused request becomes an ``error`` frame."""
        kind = content.get("type") if isinstance(content, dict) else None
        method = self._requests.get(kind) if isinstance(kind, str) else None
        try:
            if method is None:
                raise ProtocolError(
                    "unknown_type",
                    f"unknown request type {str(kind)[:50]!r}; expected one of " + ", ".join(sorted(self._requests)),
                )
            await getattr(self, method)(content)
        except ProtocolError as error:
            await self.send_error(error)

    async def send_error(self, error: ProtocolError) -> None:
        """Tell the client what was wrong with its request; the connection stays open."""
        await self.send_json(error.frame())

    # -- requests -----------------------------------------------------------------------

    async def subscribe(self, content: dict[str, Any]) -> None:
        """``subscribe {group, since?, presence?}``: join, replay what was missed, then confirm."""
        group = self.checked_group(content)
        if group in self.subscriptions:
            raise ProtocolError("already_subscribed", "already subscribed to this group", group)
        if len(self.subscriptions) >= self.max_subscriptions:
            raise ProtocolError("too_many_subscriptions", f"at most {self.max_subscriptions} subscriptions", group)
        epoch, since = parse_since(content.get("since"), group)
        position, history = await self.join_and_replay(
            group, epoch, since, "presence" in content, content.get("presence")
        )
        self.subscriptions[group] = position
        self.groups.append(group)  # left for us when the connection ends
        for event in history["messages"]:
            await self.send_json(message_frame(event))
        await self.send_json(subscribed_frame(group, history))
        if "presence" in content:
            await self.send_json({"type": "presence", "group": group, "members": await self.presence.members(group)})

    async def unsubscribe(self, content: dict[str, Any]) -> None:
        """``unsubscribe {group}``: leave the group (and its presence)."""
        group = self.subscribed_group(content)
        del self.subscriptions[group]
        self.groups.remove(group)
        if not await self.presence.leave(group):
            await self._layer.group_discard(group, self.channel_name)
        await self.send_json({"type": "unsubscribed", "group": group})

    async def list_presence(self, content: dict[str, Any]) -> None:
        """``presence {group}``: the members of a subscribed group."""
        group = self.subscribed_group(content)
        await self.send_json({"type": "presence", "group": group, "members": await self.presence.members(group)})

    async def ping(self, content: dict[str, Any]) -> None:
        """``ping``: answered at once, so the client can tell a live connection from a dead one."""
        await self.send_json({"type": "pong"})

    def subscribed_group(self, content: dict[str, Any]) -> str:
        """``content["group"]`` if this connection subscribes to it, else a ``not_subscribed`` error."""
        group = self.checked_group(content)
        if group not in self.subscriptions:
            raise ProtocolError("not_subscribed", "not subscribed to this group", group)
        return group

    #: Request type → the method handling it (looked up by name, so subclasses can override).
    _requests: ClassVar[dict[str, str]] = {
        "subscribe": "subscribe",
        "unsubscribe": "unsubscribe",
        "publish": "handle_publish",
        "presence": "list_presence",
        "ping": "ping",
    }

    # -- layer messages -----------------------------------------------------------------

    def _no_handler(self, message: Message) -> None:
        skip_unknown_event(self, message)

    # Forwards (hubbub.fastlane): one frame per fan-out, written to idle subscribers without waking them.
    pubsub_message = forward_json(build=message_frame, accept=_new_to_subscriber)
    presence_join = forward_json(build=functools.partial(_member_frame, "join"), accept=_subscribed)
    presence_leave = forward_json(build=functools.partial(_member_frame, "leave"), accept=_subscribed)


class PubSubEventStream(_GroupAccess, AsyncHttpConsumer):
    """One group over Server-Sent Events (GET), and publishing by POST, for when WebSocket is blocked.

    ``GET ?group=G`` streams the frames of the WebSocket protocol as SSE ``data:`` lines
    (``message``, ``subscribed``, ``join``/``leave``, ``presence``, ``ping``), each
    ``message`` with ``id: <epoch>:<offset>``. A reconnecting ``EventSource`` sends
    ``Last-Event-ID`` and gets what it missed; ``?last_event_id=`` does the same for a
    new ``EventSource``. ``&presence=<JSON info>`` joins the group's presence.
    ``POST`` with a JSON body ``{group, data}`` publishes (202). Refusals are HTTP
    statuses with an ``error`` frame as body: 400 bad input, 403 not allowed, 405
    method, 413 too large, 415 not JSON.
    """

    max_frame_bytes: ClassVar[int] = MAX_FRAME_BYTES
    #: Deepest nesting of arrays/objects a POST body may have (see hubbub.jsonbounds).
    max_json_depth: int | None = MAX_JSON_DEPTH
    #: Seconds between ``ping`` frames: keeps proxies from closing an idle stream, lets clients spot a dead one.
    heartbeat: ClassVar[float] = 15.0

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.group: str | None = None
        self.position: _Position | None = None
        self._held_back: list[Message] | None = []  # live events that came during the replay

    async def handle(self, body: bytes) -> None:
        try:
            if self.scope["method"] == "GET":
                await self.stream()
            elif self.scope["method"] == "POST":
                await self.publish_from(body)
            else:
                raise ProtocolError("bad_method", "use GET to stream or POST to publish", status=405)
        except ProtocolError as error:
            await self.send_response(
                error.status, json.dumps(error.frame()).encode(), headers=[(b"content-type", b"application/json")]
            )

    async def publish_from(self, body: bytes) -> None:
        headers = dict(self.scope["headers"])
        if not headers.get(b"content-type", b"").startswith(b"application/json"):
            # also makes a cross-site form post impossible: browsers preflight a JSON one
            raise ProtocolError("bad_content_type", "POST a JSON body (Content-Type: application/json)", status=415)
        if len(body) > self.max_frame_bytes:
            raise ProtocolError("too_large", f"bodies are limited to {self.max_frame_bytes} bytes", status=413)
        await self.handle_publish(decode_request(body, self.max_json_depth, "body"))
        await self.send_response(202, b"", headers=[(b"content-type", b"application/json")])

    async def stream(self) -> None:
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        group = self.checked_group({"group": query.get("group", [None])[0]})
        event_id = dict(self.scope["headers"]).get(b"last-event-id", b"").decode("latin-1")
        epoch, since = parse_event_id(event_id or query.get("last_event_id", [""])[0], group)
        info = None
        if "presence" in query:
            try:
                info = json.loads(query["presence"][0])
            except ValueError:
                raise ProtocolError("bad_presence", "presence must be JSON", group) from None
        self.position, history = await self.join_and_replay(group, epoch, since, "presence" in query, info)
        self.group = group
        await self.send_headers(
            headers=[
                (b"content-type", b"text/event-stream"),
                (b"cache-control", b"no-cache"),
                (b"x-accel-buffering", b"no"),
            ]
        )
        for event in history["messages"]:
            await self.send_event(message_frame(event))
        await self.send_event(subscribed_frame(group, history))
        if "presence" in query:
            await self.send_event({"type": "presence", "group": group, "members": await self.presence.members(group)})
        while self._held_back:  # in arrival order; new arrivals join the queue until it is empty
            await self._forward(self._held_back.pop(0))
        self._held_back = None
        while True:
            await asyncio.sleep(self.heartbeat)
            await self.send_event({"type": "ping"})

    async def send_event(self, frame: dict[str, Any]) -> None:
        """One SSE event: ``data:`` the JSON frame, with an ``id:`` for numbered messages."""
        data = json.dumps(frame)
        if frame.get("offset") is not None and frame["type"] == "message":
            chunk = f"id: {frame['epoch']}:{frame['offset']}\ndata: {data}\n\n"
        else:
            chunk = f"data: {data}\n\n"
        await self.send_body(chunk.encode(), more_body=True)

    def _no_handler(self, message: Message) -> None:
        skip_unknown_event(self, message)

    async def pubsub_message(self, event: Message) -> None:
        await self._relay(event)

    async def presence_join(self, event: Message) -> None:
        await self._relay(event)

    async def presence_leave(self, event: Message) -> None:
        await self._relay(event)

    async def _relay(self, event: Message) -> None:
        if self._held_back is not None:
            self._held_back.append(event)
        else:
            await self._forward(event)

    async def _forward(self, event: Message) -> None:
        if event.get("group") != self.group:
            return
        if event["type"] == "pubsub.message":
            if self.position is not None and self.position.advance(event):
                await self.send_event(message_frame(event))
        else:
            kind = "join" if event["type"] == "presence.join" else "leave"
            await self.send_event({"type": kind, "group": event["group"], "member": event["member"]})

    async def disconnect(self) -> None:
        if self.group is not None and self.channel_layer is not None:
            await self.channel_layer.group_discard(self.group, self.channel_name)

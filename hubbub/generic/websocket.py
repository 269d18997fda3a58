"""WebSocket consumers: connect/receive/disconnect as methods, groups joined for you."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any

from asgiref.sync import async_to_sync

from ..consumer import AsyncConsumer, SyncConsumer
from ..db import aclose_old_connections
from ..exceptions import AcceptConnection, DenyConnection, InvalidChannelLayerError, InvalidFrame, StopConsumer
from ..jsonbounds import CLOSE_INVALID_PAYLOAD, CLOSE_TOO_BIG, MAX_JSON_BYTES, MAX_JSON_DEPTH, check_json_frame
from ..layers import BaseChannelLayer
from ..ratelimit import InboundRateLimit, check_rate
from ..refusals import log_refused_frame
from ..typing import ASGIApp, Message, Scope

__all__ = [
    "AcceptConnection",
    "AsyncConsumer",
    "AsyncJsonWebsocketConsumer",
    "AsyncWebsocketConsumer",
    "DenyConnection",
    "InvalidChannelLayerError",
    "JsonWebsocketConsumer",
    "StopConsumer",
    "SyncConsumer",
    "WebsocketConsumer",
    "aclose_old_connections",
]

logger = logging.getLogger("hubbub.consumer")

# Close codes from RFC 6455 §7.4.1 for frames a consumer refuses (with CLOSE_INVALID_PAYLOAD,
# 1007, for text that is not JSON or nested too deep, and CLOSE_TOO_BIG, 1009, for a frame
# over a size limit, the server's or a JSON consumer's own: see hubbub.jsonbounds).
CLOSE_UNSUPPORTED_DATA = 1003  # a binary frame where text was expected
# Over the inbound rate limit. 1008 is the RFC's code for a message that breaks the
# endpoint's policy; 1013 ("try again later") would blame the server, and 1009 is for size.
CLOSE_POLICY_VIOLATION = 1008

#: Scope key the hubbub.testing communicators set: a refused frame then raises, as in Channels.
TEST_COMMUNICATOR_KEY = "hubbub.test_communicator"


def under_test_communicator(scope: Scope) -> bool:
    """Whether this connection is driven by a hubbub.testing communicator, not a real server."""
    return bool(scope.get(TEST_COMMUNICATOR_KEY))


def _accept_message(subprotocol: str | None, headers: Iterable[tuple[bytes, bytes]] | None) -> Message:
    message: Message = {"type": "websocket.accept", "subprotocol": subprotocol}
    if headers:
        message["headers"] = list(headers)
    return message


def _send_message(text_data: str | None, bytes_data: bytes | None) -> Message:
    if text_data is not None:
        return {"type": "websocket.send", "text": text_data}
    if bytes_data is not None:
        return {"type": "websocket.send", "bytes": bytes_data}
    raise ValueError("send() needs text_data or bytes_data")


def _close_message(code: Any, reason: str | None) -> Message:
    message: Message = {"type": "websocket.close"}
    if code is not None and code is not True:  # send(close=True) passes True
        message["code"] = code
    if reason:
        message["reason"] = reason
    return message


def _close_reason(reason: str) -> str:
    """A close reason fits in 123 bytes of UTF-8 (RFC 6455 §5.5: 125 with the code)."""
    return reason.encode("utf-8")[:120].decode("utf-8", "ignore")


class _InboundLimit:
    """The per-connection inbound rate limit both WebSocket consumers share (off by default).

    Set ``max_messages_per_second`` and/or ``max_bytes_per_second`` on the class or as
    ``as_asgi()`` keywords. A client may burst up to one second's allowance; past it the
    connection is closed with 1008 (policy violation), one log line is written, and the
    frames still arriving before the close completes are ignored.
    """

    max_messages_per_second: float | None = None
    max_bytes_per_second: float | None = None
    _inbound: InboundRateLimit | None = None
    _over_limit = False
    _sent_close = False  # this side closed: a disconnect code after that is ours, not the server's

    @classmethod
    def as_asgi(cls, **initkwargs: Any) -> ASGIApp:
        for name in ("max_messages_per_second", "max_bytes_per_second"):
            check_rate(initkwargs.get(name, getattr(cls, name)), name, cls.__name__)
        application: ASGIApp = super().as_asgi(**initkwargs)  # type: ignore[misc]
        return application

    def _start_inbound_limit(self) -> None:
        if self.max_messages_per_second is not None or self.max_bytes_per_second is not None:
            self._inbound = InboundRateLimit(self.max_messages_per_second, self.max_bytes_per_second)

    def _frame_refused(self, message: Message) -> str | None:
        """None if the frame may pass; else the close reason (empty once the limit has already tripped)."""
        if self._over_limit:
            return ""
        inbound = self._inbound
        assert inbound is not None
        text = message.get("text")
        size = len(text.encode("utf-8")) if text is not None else len(message.get("bytes") or b"")
        if inbound.allows(size):
            return None
        self._over_limit = True
        reason = f"over the inbound rate limit ({inbound.describe()})"
        log_refused_frame(self, CLOSE_POLICY_VIOLATION, reason)
        return reason


def _log_server_refusal(consumer: Any, code: Any) -> None:
    """A disconnect with 1009 the consumer did not cause: the server refused a frame over its size limit.

    (A client may also close with 1009 when one of our frames is over its own limit; the
    ASGI disconnect cannot tell the two apart, and the server's limit is by far the likelier.)
    """
    if code == CLOSE_TOO_BIG and not consumer._sent_close:
        log_refused_frame(
            consumer, CLOSE_TOO_BIG, "frame over the server's size limit (--ws-max-size)", refused_by="the server"
        )


def _missing_groups_support(exc: AttributeError) -> InvalidChannelLayerError:
    return InvalidChannelLayerError(f"This consumer lists groups but CHANNEL_LAYERS has no usable layer for it ({exc})")


def _groups_layer(consumer: AsyncConsumer) -> BaseChannelLayer:
    """The layer that holds the consumer's groups (asked only when it lists some)."""
    if consumer.channel_layer is None:
        raise InvalidChannelLayerError(
            "This consumer lists groups but CHANNEL_LAYERS has no usable layer for it (none)"
        )
    return consumer.channel_layer


class WebsocketConsumer(_InboundLimit, SyncConsumer):
    """Synchronous WebSocket consumer: override ``connect``, ``receive`` and ``disconnect``."""

    groups: list[str] | None = None
    _groups_left = False  # the groups were left (on disconnect, or by _teardown after an error)

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(**kwargs)
        if self.groups is None:
            self.groups = []
        self._start_inbound_limit()

    def websocket_connect(self, message: Message) -> None:
        try:
            for group in self.groups or ():
                async_to_sync(_groups_layer(self).group_add)(group, self.channel_name)
        except AttributeError as exc:
            raise _missing_groups_support(exc) from exc
        try:
            self.connect()
        except AcceptConnection:
            self.accept()
        except DenyConnection:
            self.close()

    def connect(self) -> None:
        self.accept()

    def accept(self, subprotocol: str | None = None, headers: Iterable[tuple[bytes, bytes]] | None = None) -> None:
        """Accept the connection, optionally choosing a subprotocol and adding response headers."""
        super().send(_accept_message(subprotocol, headers))

    def websocket_receive(self, message: Message) -> None:
        if self._inbound is not None:
            refused = self._frame_refused(message)
            if refused is not None:
                if refused:
                    self.close(code=CLOSE_POLICY_VIOLATION, reason=_close_reason(refused))
                return
        text = message.get("text")
        if text is not None:
            self.receive(text_data=text)
        else:
            self.receive(bytes_data=message.get("bytes"))

    def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Called with each frame's data."""

    def send(  # type: ignore[override]
        self, text_data: str | None = None, bytes_data: bytes | None = None, close: Any = False
    ) -> None:
        """Send a text or binary frame; ``close=True`` (or a close code) closes afterwards."""
        super().send(_send_message(text_data, bytes_data))
        if close:
            self.close(close)

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        """Close the connection (before accept: refuse it, HTTP 403)."""
        self._sent_close = True
        super().send(_close_message(code, reason))

    def websocket_disconnect(self, message: Message) -> None:
        try:
            for group in self.groups or ():
                async_to_sync(_groups_layer(self).group_discard)(group, self.channel_name)
        except AttributeError as exc:
            raise _missing_groups_support(exc) from exc
        self._groups_left = True
        _log_server_refusal(self, message.get("code"))
        self.disconnect(message.get("code", 1000))
        raise StopConsumer()

    def disconnect(self, code: int) -> None:
        """Called when the socket closes, for either side's reason."""

    async def _teardown(self) -> None:
        await _leave_groups_if_needed(self)


class JsonWebsocketConsumer(WebsocketConsumer):
    """Synchronous consumer that speaks JSON text frames."""

    #: Bounds on decoding one frame (see hubbub.jsonbounds); None turns one off.
    max_json_bytes: int | None = MAX_JSON_BYTES
    max_json_depth: int | None = MAX_JSON_DEPTH

    def receive(self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any) -> None:
        try:
            content = _decode(self, text_data)
        except InvalidFrame as error:
            self.reject_frame(error)
            return
        self.receive_json(content, **kwargs)

    def receive_json(self, content: Any, **kwargs: Any) -> None:
        """Called with each decoded JSON message."""

    def reject_frame(self, error: InvalidFrame) -> None:
        """A frame was binary, not JSON, or past a bound: close with ``error.code`` and log one line.

        Under a hubbub.testing communicator the error is raised instead, as Channels does
        (see ``raised_for``). Override to answer the client and keep the connection.
        """
        if under_test_communicator(self.scope):
            raise raised_for(error)
        log_refused_frame(self, error.code, error.reason)
        self.close(code=error.code, reason=_close_reason(error.reason))

    def send_json(self, content: Any, close: bool = False) -> None:
        super().send(text_data=self.encode_json(content), close=close)

    @classmethod
    def decode_json(cls, text_data: str) -> Any:
        return json.loads(text_data)

    @classmethod
    def encode_json(cls, content: Any) -> str:
        return json.dumps(content)


class AsyncWebsocketConsumer(_InboundLimit, AsyncConsumer):
    """Asynchronous WebSocket consumer: override ``connect``, ``receive`` and ``disconnect``."""

    groups: list[str] | None = None
    _groups_left = False  # the groups were left (on disconnect, or by _teardown after an error)

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(**kwargs)
        if self.groups is None:
            self.groups = []
        self._start_inbound_limit()

    async def websocket_connect(self, message: Message) -> None:
        try:
            for group in self.groups or ():
                await _groups_layer(self).group_add(group, self.channel_name)
        except AttributeError as exc:
            raise _missing_groups_support(exc) from exc
        try:
            await self.connect()
        except AcceptConnection:
            await self.accept()
        except DenyConnection:
            await self.close()

    async def connect(self) -> None:
        await self.accept()

    async def accept(
        self, subprotocol: str | None = None, headers: Iterable[tuple[bytes, bytes]] | None = None
    ) -> None:
        """Accept the connection, optionally choosing a subprotocol and adding response headers."""
        await self.base_send(_accept_message(subprotocol, headers))

    async def websocket_receive(self, message: Message) -> None:
        if self._inbound is not None:
            refused = self._frame_refused(message)
            if refused is not None:
                if refused:
                    await self.close(code=CLOSE_POLICY_VIOLATION, reason=_close_reason(refused))
                return
        text = message.get("text")
        if text is not None:
            await self.receive(text_data=text)
        else:
            await self.receive(bytes_data=message.get("bytes"))

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Called with each frame's data."""

    async def send(  # type: ignore[override]
        self, text_data: str | None = None, bytes_data: bytes | None = None, close: Any = False
    ) -> None:
        """Send a text or binary frame; ``close=True`` (or a close code) closes afterwards."""
        if text_data is not None:
            await self.base_send({"type": "websocket.send", "text": text_data})
        else:
            await self.base_send(_send_message(None, bytes_data))
        if close:
            await self.close(close)

    async def close(self, code: int | None = None, reason: str | None = None) -> None:
        """Close the connection (before accept: refuse it, HTTP 403)."""
        self._sent_close = True
        await self.base_send(_close_message(code, reason))

    async def websocket_disconnect(self, message: Message) -> None:
        try:
            for group in self.groups or ():
                await _groups_layer(self).group_discard(group, self.channel_name)
        except AttributeError as exc:
            raise _missing_groups_support(exc) from exc
        self._groups_left = True
        _log_server_refusal(self, message.get("code"))
        await self.disconnect(message.get("code", 1000))
        raise StopConsumer()

    async def disconnect(self, code: int) -> None:
        """Called when the socket closes, for either side's reason."""

    async def _teardown(self) -> None:
        await _leave_groups_if_needed(self)


class AsyncJsonWebsocketConsumer(AsyncWebsocketConsumer):
    """Asynchronous consumer that speaks JSON text frames."""

    #: Bounds on decoding one frame (see hubbub.jsonbounds); None turns one off.
    max_json_bytes: int | None = MAX_JSON_BYTES
    max_json_depth: int | None = MAX_JSON_DEPTH

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any) -> None:
        try:
            content = await _adecode(self, text_data)
        except InvalidFrame as error:
            await self.reject_frame(error)
            return
        await self.receive_json(content, **kwargs)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        """Called with each decoded JSON message."""

    async def reject_frame(self, error: InvalidFrame) -> None:
        """A frame was binary, not JSON, or past a bound: close with ``error.code`` and log one line.

        Under a hubbub.testing communicator the error is raised instead, as Channels does
        (see ``raised_for``). Override to answer the client and keep the connection.
        """
        if under_test_communicator(self.scope):
            raise raised_for(error)
        log_refused_frame(self, error.code, error.reason)
        await self.close(code=error.code, reason=_close_reason(error.reason))

    async def send_json(self, content: Any, close: bool = False) -> None:
        await super().send(text_data=await self.encode_json(content), close=close)

    @classmethod
    async def decode_json(cls, text_data: str) -> Any:
        return json.loads(text_data)

    @classmethod
    async def encode_json(cls, content: Any) -> str:
        return json.dumps(content)


_NO_TEXT = "No text section for incoming WebSocket frame!"  # Channels' message, which ported tests match


def raised_for(error: InvalidFrame) -> ValueError:
    """The exception Channels would let out for this frame: its ``ValueError`` or ``JSONDecodeError``.

    A frame refused for its size or depth, or one whose decoding failed with something
    other than a ``ValueError`` (``RecursionError``), raises the ``InvalidFrame`` itself,
    so the caller always gets a ``ValueError``.
    """
    cause = error.__cause__
    return cause if isinstance(cause, ValueError) else error


def _bad_json(exc: Exception) -> InvalidFrame:
    if isinstance(exc, RecursionError):
        return InvalidFrame("JSON nested too deep to decode", CLOSE_INVALID_PAYLOAD)
    return InvalidFrame(f"frame is not valid JSON ({str(exc)[:200]})", CLOSE_INVALID_PAYLOAD)


def _checked_text(consumer: Any, text_data: str | None) -> str:
    if text_data is None:
        raise InvalidFrame(
            "binary frame received; this consumer reads JSON text frames", CLOSE_UNSUPPORTED_DATA
        ) from ValueError(_NO_TEXT)
    if not text_data:
        raise InvalidFrame(
            "empty text frame; this consumer reads JSON text frames", CLOSE_INVALID_PAYLOAD
        ) from ValueError(_NO_TEXT)
    check_json_frame(text_data, consumer.max_json_bytes, consumer.max_json_depth)
    return text_data


def _decode(consumer: JsonWebsocketConsumer, text_data: str | None) -> Any:
    text = _checked_text(consumer, text_data)
    try:
        return consumer.decode_json(text)
    except Exception as exc:  # any decode error of client input is a bad frame (RecursionError too)
        raise _bad_json(exc) from exc


async def _adecode(consumer: AsyncJsonWebsocketConsumer, text_data: str | None) -> Any:
    text = _checked_text(consumer, text_data)
    try:
        return await consumer.decode_json(text)
    except Exception as exc:  # any decode error of client input is a bad frame (RecursionError too)
        raise _bad_json(exc) from exc


async def _leave_groups_if_needed(consumer: Any) -> None:
    """Leave the consumer's groups if it ended without a disconnect (an error, a server stop)."""
    layer = consumer.channel_layer
    if layer is None or not consumer.groups or consumer._groups_left:
        return
    consumer._groups_left = True
    for group in consumer.groups:
        try:
            await layer.group_discard(group, consumer.channel_name)
        except Exception:  # the connection is gone either way; group_expiry is the backstop
            logger.exception("could not leave group %r after the consumer ended", group)

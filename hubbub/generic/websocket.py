"""WebSocket consumers: connect/receive/disconnect as methods, groups joined for you."""

from __future__ import annotations

import json
import logging
from typing import Any, Iterable, List, Optional, Tuple

from asgiref.sync import async_to_sync

from ..consumer import AsyncConsumer, SyncConsumer
from ..db import aclose_old_connections
from ..exceptions import AcceptConnection, DenyConnection, InvalidChannelLayerError, InvalidFrame, StopConsumer
from ..typing import Message

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

# Close codes from RFC 6455 §7.4.1 for frames a JSON consumer cannot take.
CLOSE_UNSUPPORTED_DATA = 1003  # a binary frame where text was expected
CLOSE_INVALID_PAYLOAD = 1007  # text that is not valid JSON


def _accept_message(subprotocol: Optional[str], headers: Optional[Iterable[Tuple[bytes, bytes]]]) -> Message:
    message: Message = {"type": "websocket.accept", "subprotocol": subprotocol}
    if headers:
        message["headers"] = list(headers)
    return message


def _send_message(text_data: Optional[str], bytes_data: Optional[bytes]) -> Message:
    if text_data is not None:
        return {"type": "websocket.send", "text": text_data}
    if bytes_data is not None:
        return {"type": "websocket.send", "bytes": bytes_data}
    raise ValueError("send() needs text_data or bytes_data")


def _close_message(code: Any, reason: Optional[str]) -> Message:
    message: Message = {"type": "websocket.close"}
    if code is not None and code is not True:  # send(close=True) passes True
        message["code"] = code
    if reason:
        message["reason"] = reason
    return message


def _missing_groups_support(exc: AttributeError) -> InvalidChannelLayerError:
    return InvalidChannelLayerError(
        f"This consumer lists groups but CHANNEL_LAYERS has no usable layer for it ({exc})"
    )


class WebsocketConsumer(SyncConsumer):
    """Synchronous WebSocket consumer: override ``connect``, ``receive`` and ``disconnect``."""

    groups: Optional[List[str]] = None

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(**kwargs)
        if self.groups is None:
            self.groups = []

    def websocket_connect(self, message: Message) -> None:
        try:
            for group in self.groups:
                async_to_sync(self.channel_layer.group_add)(group, self.channel_name)
        except AttributeError as exc:
            raise _missing_groups_support(exc)
        try:
            self.connect()
        except AcceptConnection:
            self.accept()
        except DenyConnection:
            self.close()

    def connect(self) -> None:
        self.accept()

    def accept(self, subprotocol: Optional[str] = None, headers: Optional[Iterable[Tuple[bytes, bytes]]] = None) -> None:
        """Accept the connection, optionally choosing a subprotocol and adding response headers."""
        super().send(_accept_message(subprotocol, headers))

    def websocket_receive(self, message: Message) -> None:
        text = message.get("text")
        if text is not None:
            self.receive(text_data=text)
        else:
            self.receive(bytes_data=message.get("bytes"))

    def receive(self, text_data: Optional[str] = None, bytes_data: Optional[bytes] = None) -> None:
        """Called with each frame's data."""

    def send(  # type: ignore[override]
        self, text_data: Optional[str] = None, bytes_data: Optional[bytes] = None, close: Any = False
    ) -> None:
        """Send a text or binary frame; ``close=True`` (or a close code) closes afterwards."""
        super().send(_send_message(text_data, bytes_data))
        if close:
            self.close(close)

    def close(self, code: Optional[int] = None, reason: Optional[str] = None) -> None:
        """Close the connection (before accept: refuse it, HTTP 403)."""
        super().send(_close_message(code, reason))

    def websocket_disconnect(self, message: Message) -> None:
        try:
            for group in self.groups:
                async_to_sync(self.channel_layer.group_discard)(group, self.channel_name)
        except AttributeError as exc:
            raise _missing_groups_support(exc)
        self._groups_left = True
        self.disconnect(message.get("code", 1000))
        raise StopConsumer()

    def disconnect(self, code: int) -> None:
        """Called when the socket closes, for either side's reason."""

    async def _teardown(self) -> None:
        await _leave_groups_if_needed(self)


class JsonWebsocketConsumer(WebsocketConsumer):
    """Synchronous consumer that speaks JSON text frames."""

    def receive(self, text_data: Optional[str] = None, bytes_data: Optional[bytes] = None, **kwargs: Any) -> None:
        try:
            content = _decode(self, text_data)
        except InvalidFrame as error:
            self.reject_frame(error)
            return
        self.receive_json(content, **kwargs)

    def receive_json(self, content: Any, **kwargs: Any) -> None:
        """Called with each decoded JSON message."""

    def reject_frame(self, error: InvalidFrame) -> None:
        """A frame was binary or not JSON: log it and close with ``error.code``. Override to answer instead."""
        logger.warning("%s: %s; closing with %d", type(self).__name__, error.reason, error.code)
        self.close(code=error.code, reason=error.reason[:120])

    def send_json(self, content: Any, close: bool = False) -> None:
        super().send(text_data=self.encode_json(content), close=close)

    @classmethod
    def decode_json(cls, text_data: str) -> Any:
        return json.loads(text_data)

    @classmethod
    def encode_json(cls, content: Any) -> str:
        return json.dumps(content)


class AsyncWebsocketConsumer(AsyncConsumer):
    """Asynchronous WebSocket consumer: override ``connect``, ``receive`` and ``disconnect``."""

    groups: Optional[List[str]] = None

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(**kwargs)
        if self.groups is None:
            self.groups = []

    async def websocket_connect(self, message: Message) -> None:
        try:
            for group in self.groups:
                await self.channel_layer.group_add(group, self.channel_name)
        except AttributeError as exc:
            raise _missing_groups_support(exc)
        try:
            await self.connect()
        except AcceptConnection:
            await self.accept()
        except DenyConnection:
            await self.close()

    async def connect(self) -> None:
        await self.accept()

    async def accept(
        self, subprotocol: Optional[str] = None, headers: Optional[Iterable[Tuple[bytes, bytes]]] = None
    ) -> None:
        """Accept the connection, optionally choosing a subprotocol and adding response headers."""
        self._accepted = True
        await self.base_send(_accept_message(subprotocol, headers))

    async def websocket_receive(self, message: Message) -> None:
        text = message.get("text")
        if text is not None:
            await self.receive(text_data=text)
        else:
            await self.receive(bytes_data=message.get("bytes"))

    async def receive(self, text_data: Optional[str] = None, bytes_data: Optional[bytes] = None) -> None:
        """Called with each frame's data."""

    async def send(  # type: ignore[override]
        self, text_data: Optional[str] = None, bytes_data: Optional[bytes] = None, close: Any = False
    ) -> None:
        """Send a text or binary frame; ``close=True`` (or a close code) closes afterwards."""
        if text_data is not None:
            await self.base_send({"type": "websocket.send", "text": text_data})
        else:
            await self.base_send(_send_message(None, bytes_data))
        if close:
            await self.close(close)

    async def close(self, code: Optional[int] = None, reason: Optional[str] = None) -> None:
        """Close the connection (before accept: refuse it, HTTP 403)."""
        await self.base_send(_close_message(code, reason))

    async def websocket_disconnect(self, message: Message) -> None:
        try:
            for group in self.groups:
                await self.channel_layer.group_discard(group, self.channel_name)
        except AttributeError as exc:
            raise _missing_groups_support(exc)
        self._groups_left = True
        await self.disconnect(message.get("code", 1000))
        raise StopConsumer()

    async def disconnect(self, code: int) -> None:
        """Called when the socket closes, for either side's reason."""

    async def _teardown(self) -> None:
        await _leave_groups_if_needed(self)


class AsyncJsonWebsocketConsumer(AsyncWebsocketConsumer):
    """Asynchronous consumer that speaks JSON text frames."""

    async def receive(self, text_data: Optional[str] = None, bytes_data: Optional[bytes] = None, **kwargs: Any) -> None:
        try:
            content = await _adecode(self, text_data)
        except InvalidFrame as error:
            await self.reject_frame(error)
            return
        await self.receive_json(content, **kwargs)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        """Called with each decoded JSON message."""

    async def reject_frame(self, error: InvalidFrame) -> None:
        """A frame was binary or not JSON: log it and close with ``error.code``. Override to answer instead."""
        logger.warning("%s: %s; closing with %d", type(self).__name__, error.reason, error.code)
        await self.close(code=error.code, reason=error.reason[:120])

    async def send_json(self, content: Any, close: bool = False) -> None:
        await super().send(text_data=await self.encode_json(content), close=close)

    @classmethod
    async def decode_json(cls, text_data: str) -> Any:
        return json.loads(text_data)

    @classmethod
    async def encode_json(cls, content: Any) -> str:
        return json.dumps(content)


_BINARY = "binary frame received; this consumer reads JSON text frames"


def _decode(consumer: JsonWebsocketConsumer, text_data: Optional[str]) -> Any:
    if text_data is None:
        raise InvalidFrame(_BINARY, CLOSE_UNSUPPORTED_DATA)
    try:
        return consumer.decode_json(text_data)
    except ValueError as exc:
        raise InvalidFrame(f"frame is not valid JSON ({exc})", CLOSE_INVALID_PAYLOAD)


async def _adecode(consumer: AsyncJsonWebsocketConsumer, text_data: Optional[str]) -> Any:
    if text_data is None:
        raise InvalidFrame(_BINARY, CLOSE_UNSUPPORTED_DATA)
    try:
        return await consumer.decode_json(text_data)
    except ValueError as exc:
        raise InvalidFrame(f"frame is not valid JSON ({exc})", CLOSE_INVALID_PAYLOAD)


async def _leave_groups_if_needed(consumer: Any) -> None:
    """Leave the consumer's groups if it ended without a disconnect (an error, a server stop)."""
    layer = consumer.channel_layer
    if layer is None or not consumer.groups or getattr(consumer, "_groups_left", False):
        return
    consumer._groups_left = True
    for group in consumer.groups:
        try:
            await layer.group_discard(group, consumer.channel_name)
        except Exception:  # the connection is gone either way; group_expiry is the backstop
            logger.exception("could not leave group %r after the consumer ended", group)

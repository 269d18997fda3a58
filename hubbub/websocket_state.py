"""A WebSocket consumer's connection: handshake state, outgoing buffer, and what an ending sends.

Theory of operation. ``WebSocketConnection`` is what ``hubbub.connection`` gives every
consumer whose scope type is ``"websocket"``, whether it derives from the generic
WebSocket consumers or speaks raw ASGI messages on the bare ``AsyncConsumer``. Every
message the application sends passes through ``send``, which moves the state:

==============  =====================================================  ==============
state           message sent                                           next state
==============  =====================================================  ==============
CONNECTING      ``websocket.accept``                                   OPEN
CONNECTING      ``websocket.close`` (refusal: the server answers 403)   REFUSED
CONNECTING      ``websocket.http.response.start`` (denial response)    RESPONDING
RESPONDING      ``websocket.http.response.body``                       RESPONDING / CLOSED (last)
OPEN            ``websocket.send``                                     OPEN
OPEN            ``websocket.close``                                    CLOSED
CLOSED          ``websocket.send`` / ``websocket.close``               CLOSED (discarded or refused)
REFUSED         ``websocket.send`` / ``websocket.close``               REFUSED (likewise)
==============  =====================================================  ==============

Anything else raises ``RuntimeError`` naming the message types that were expected, before
anything reaches the server. Frames go on to the outbox (``hubbub.backpressure``). When the
consumer ends: an error after the handshake was accepted closes with 1011 (servers would
drop the TCP connection, which the client cannot tell from a network fault); a group name
the layer refused before accept refuses the handshake (403) with one WARNING line; then
queued frames get their time to leave (``Outbox.flush``). A client too slow for the
outbox's "close" policy is disconnected from a task in the consumer's task group (1013), and so
is one whose server ``send`` raised ``OSError`` (1006): the client is gone, and a server such as
Granian need not say so through ``receive``.

Once the accept is on its way, a consumer whose class has forwards (``hubbub.fastlane``) on a
layer with the "fastlane" extension attaches its sink to its channel: group messages for an
idle consumer are then written from the sender's task. It is detached as the consumer stops
running, whichever way it ends (``stopped``, called by the base consumer).
"""

from __future__ import annotations

import contextlib
import contextvars
import enum
import logging
from collections.abc import Awaitable
from typing import Any

from asgiref.sync import markcoroutinefunction

from . import fastlane, tcp_user_timeout
from .backpressure import TRY_AGAIN_LATER, Outbox
from .connection import hooks, register_protocol
from .exceptions import InvalidGroupName, StopConsumer
from .layers import BaseChannelLayer
from .typing import Message, Scope, Send

__all__ = ["WebSocketConnection", "WebSocketState"]

logger = logging.getLogger("hubbub.consumer")

#: RFC 6455 §7.4.1: the connection closed without a close frame (what servers report for a lost client).
ABNORMAL_CLOSURE = 1006


class WebSocketState(enum.Enum):
    """Where the application side of a WebSocket is, as its sent messages tell."""

    CONNECTING = "connecting"
    OPEN = "open"
    RESPONDING = "responding"
    CLOSED = "closed"
    REFUSED = "refused"

    def after(self, message: Message) -> WebSocketState:
        """The state once ``message`` is sent; ``RuntimeError`` naming the expected types if it may not be."""
        kind = message.get("type")
        if kind == "websocket.http.response.body":
            if self is WebSocketState.RESPONDING:
                return self if message.get("more_body") else WebSocketState.CLOSED
        else:
            nxt = _NEXT[self].get(kind)  # type: ignore[arg-type]
            if nxt is not None:
                return nxt
        expected = ", ".join(repr(name) for name in _EXPECTED[self])
        raise RuntimeError(f"WebSocket is {self.value}: expected ASGI message {expected}, but got {kind!r}")


_NEXT: dict[WebSocketState, dict[str, WebSocketState]] = {
    WebSocketState.CONNECTING: {
        "websocket.accept": WebSocketState.OPEN,
        "websocket.close": WebSocketState.REFUSED,
        "websocket.http.response.start": WebSocketState.RESPONDING,
    },
    WebSocketState.RESPONDING: {},
    WebSocketState.OPEN: {"websocket.send": WebSocketState.OPEN, "websocket.close": WebSocketState.CLOSED},
    WebSocketState.CLOSED: {"websocket.send": WebSocketState.CLOSED, "websocket.close": WebSocketState.CLOSED},
    WebSocketState.REFUSED: {"websocket.send": WebSocketState.REFUSED, "websocket.close": WebSocketState.REFUSED},
}
_EXPECTED: dict[WebSocketState, tuple[str, ...]] = {
    **{state: tuple(table) for state, table in _NEXT.items()},
    WebSocketState.RESPONDING: ("websocket.http.response.body",),
}


class WebSocketConnection:
    """One WebSocket consumer's side of the connection (see the module's docstring)."""

    __slots__ = ("consumer", "scope", "state", "outbox", "send", "gone", "_context", "_sink")

    send: Send

    def __init__(self, consumer: Any, scope: Scope, send: Send):
        self.consumer, self.scope = consumer, scope
        self.state = WebSocketState.CONNECTING
        self.gone = False  # a send found the client gone; its disconnect is dispatched
        self._sink: fastlane.Sink | None = None  # attached to the consumer's channel while OPEN
        self._context = contextvars.copy_context()  # see _slow_client
        tcp_user_timeout.install()  # once per process: stalled clients get cut off
        self.outbox = Outbox(
            send,
            consumer.outbox_max_messages,
            consumer.outbox_max_bytes,
            consumer.outbox_policy,
            self._slow_client,
            self._send_failed,
            scope,
        )
        consumer.outbox = self.outbox
        outbox_send = self.outbox.send
        open_ = WebSocketState.OPEN

        def send_checked(message: Message) -> Awaitable[None]:
            """Move the state (or raise), then hand back the outbox's send: no coroutine frame of its own."""
            if self.state is not open_ or message["type"] != "websocket.send":  # the frame path stays one test
                before, self.state = self.state, self.state.after(message)
                if self.state is open_ and before is not open_:
                    return self._accepted(message)
            return outbox_send(message)

        self.send = markcoroutinefunction(send_checked)

    async def _accepted(self, message: Message) -> None:
        """Send the accept; then (the accept ahead of any frame) attach the fastlane, if it applies."""
        await self.outbox.send(message)
        consumer = self.consumer
        layer = consumer.channel_layer
        if layer is None or "fastlane" not in getattr(layer, "extensions", ()) or self._sink is not None:
            return
        table = fastlane.forward_table(type(consumer))
        if not table or not fastlane.enabled():
            return
        sink = fastlane.make_sink(consumer, self, table, hooks().message_in)
        try:
            layer.attach_direct(consumer.channel_name, sink)
        except Exception as exc:  # the layer's bug: this connection keeps the normal path
            logger.error("WebSocket %r: the layer refused the fastlane (%r); normal path", self.scope.get("path"), exc)
            return
        self._sink = sink

    def stopped(self) -> None:
        """The consumer has stopped running (however it ended): its channel's messages no longer go to the fastlane."""
        sink, self._sink = self._sink, None
        if sink is not None:
            layer = self.consumer.channel_layer
            try:
                layer.detach_direct(self.consumer.channel_name, sink)
            except Exception as exc:  # the layer's bug must not keep the connection from closing
                logger.error("WebSocket %r: could not detach the fastlane: %r", self.scope.get("path"), exc)

    def _slow_client(self) -> None:
        """The outbox overflowed under the "close" policy: end as if the client had left (1013).

        The disconnect task is made in the connection's own context: the send that overflowed
        may come from a sync handler's thread, whose asgiref context would route the
        disconnect handler to that thread after it has moved on.
        """
        self._context.run(self.consumer._start_soon, self._disconnect, TRY_AGAIN_LATER)

    async def _disconnect(self, code: int) -> None:
        """Dispatch a ``websocket.disconnect`` the server did not send, then end the consumer."""
        consumer = self.consumer
        async with consumer._dispatch_lock:
            await consumer.dispatch({"type": "websocket.disconnect", "code": code})
        raise StopConsumer()

    def _send_failed(self, exc: BaseException) -> None:
        """A frame could not be handed to the server: the client is gone (``OSError``), else end with that error.

        A client gone ends the consumer as if the server had sent ``websocket.disconnect``
        (1006, abnormal closure), once: not every server sends one when a send fails.
        """
        if isinstance(exc, OSError):
            if not self.gone:
                self.gone = True
                self._context.run(self.consumer._start_soon, self._disconnect, ABNORMAL_CLOSURE)
            return
        if not self.consumer._start_soon(_raise, exc):
            logger.warning(
                "WebSocket %r: a queued frame failed after the consumer ended: %r", self.scope.get("path"), exc
            )

    def refuses_handshake(self, exc: Exception) -> bool:
        """A group name the layer refused before the WebSocket was accepted (a room called ``Café Paris``)."""
        return isinstance(exc, InvalidGroupName) and self.state in (WebSocketState.CONNECTING, WebSocketState.REFUSED)

    async def finish(self, error: Exception | None) -> bool:
        """Answer an error as a client can understand it, then give queued frames their time to leave."""
        handled = False
        try:
            if error is not None:
                handled = await self._answer_error(error)
        finally:
            await self.outbox.flush()
        return handled

    async def _answer_error(self, error: Exception) -> bool:
        if self.refuses_handshake(error):
            logger.warning(
                "WebSocket %r refused (403): group name %r is not valid (ASCII letters, digits, '-', '_' and '.' only, "
                "under %d characters).",
                self.scope.get("path"),
                getattr(error, "name", None),
                BaseChannelLayer.MAX_NAME_LENGTH,
            )
            await self.send({"type": "websocket.close", "code": 1008})  # before accept: the server answers 403
            return True
        if self.state is not WebSocketState.OPEN or isinstance(error, OSError):  # OSError: the client is gone
            return False
        with contextlib.suppress(Exception):  # the client went away meanwhile
            await self.send({"type": "websocket.close", "code": 1011})
        return False


async def _raise(exc: BaseException) -> None:
    raise exc


register_protocol("websocket", WebSocketConnection)

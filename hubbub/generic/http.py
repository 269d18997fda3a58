"""HTTP consumer for long-lived or streamed responses (long-polling, Server-Sent Events)."""

from __future__ import annotations

import enum
from collections.abc import Iterable

from ..consumer import AsyncConsumer
from ..db import aclose_old_connections
from ..exceptions import StopConsumer
from ..typing import Message

__all__ = ["AsyncConsumer", "AsyncHttpConsumer", "StopConsumer", "aclose_old_connections"]

HeaderList = Iterable[tuple[bytes, bytes]] | dict[bytes, bytes]


class HandleState(enum.Enum):
    """Where ``handle`` and the response it produces are."""

    WAITING = "waiting for the request body"
    HANDLING = "handle() is running"
    RETURNED = "handle() returned, the response is still open"
    RESPONDED = "the response is complete"


class AsyncHttpConsumer(AsyncConsumer):
    """Override ``handle(body)``; it runs once the whole request body has arrived.

    ``handle`` runs in a task of its own, so the consumer keeps listening while it
    works: a client that disconnects cancels a ``handle`` that streams forever, and
    channel-layer messages (``chat.message`` → ``send_body``) are dispatched during
    a response left open with ``more_body=True``. The consumer ends when the
    response is complete and ``handle`` has returned, or when the client goes away;
    ``disconnect()`` is called either way.
    """

    def __init__(self, *args: object, **kwargs: object):
        super().__init__(**kwargs)
        self.body: list[bytes] = []
        self._handle_state = HandleState.WAITING

    async def send_headers(self, *, status: int = 200, headers: HeaderList | None = None) -> None:
        """Start the response (sent to the client together with the first body chunk)."""
        if headers is None:
            headers = []
        elif isinstance(headers, dict):
            headers = list(headers.items())
        await self.send({"type": "http.response.start", "status": status, "headers": list(headers)})

    async def send_body(self, body: bytes, *, more_body: bool = False) -> None:
        """Send a chunk of body; ``more_body=True`` keeps the response open for more."""
        if not isinstance(body, bytes):
            raise TypeError(f"send_body() needs bytes, not {type(body).__name__}")
        await self.send({"type": "http.response.body", "body": body, "more_body": more_body})
        if not more_body:
            running = self._handle_state is HandleState.HANDLING
            self._handle_state = HandleState.RESPONDED
            if not running:  # sent from a channel-layer handler: the exchange is over
                raise StopConsumer()

    async def send_response(self, status: int, body: bytes, **kwargs: object) -> None:
        """Send a whole response at once."""
        await self.send_headers(status=status, **kwargs)  # type: ignore[arg-type]
        await self.send_body(body)

    async def handle(self, body: bytes) -> None:
        """Produce the response for the request whose body is ``body``."""
        raise NotImplementedError("Subclasses of AsyncHttpConsumer must provide a handle() method.")

    async def disconnect(self) -> None:
        """Called once when the consumer ends. Nothing may be sent from here."""

    async def http_request(self, message: Message) -> None:
        if "body" in message:
            self.body.append(message["body"])
        if not message.get("more_body"):
            body = b"".join(self.body)
            self.body = []
            self._handle_state = HandleState.HANDLING
            self._start_soon(self._run_handle, body)

    async def _run_handle(self, body: bytes) -> None:
        """Run ``handle`` beside the consumer; its error ends the consumer (the server answers 500)."""
        await self.handle(body)
        if self._handle_state is HandleState.RESPONDED:
            raise StopConsumer()
        self._handle_state = HandleState.RETURNED

    async def http_disconnect(self, message: Message) -> None:
        raise StopConsumer()

    async def _teardown(self) -> None:
        await self.disconnect()  # a handle() still running was cancelled with the consumer's tasks

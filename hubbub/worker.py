"""Background consumers: ``manage.py runworker thumbnails`` serves named channels of the layer.

A view sends work with ``async_to_sync(channel_layer.send)('thumbnails', {'type':
'thumbnails.make', ...})``; the worker receives it and hands it to the application
routed to that channel (``ChannelNameRouter({'thumbnails': ThumbnailConsumer.as_asgi()})``
under the ``'channel'`` key of the ``ProtocolTypeRouter``). Each channel gets one
long-lived application instance with scope ``{'type': 'channel', 'channel': name}``,
fed its messages in order.

Shutdown (SIGINT or SIGTERM): the worker stops taking messages, lets each instance
finish the messages it already has (up to ``shutdown_timeout`` seconds), then cancels
the instances and closes the layer.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from asgiref.server import StatelessServer

from .layers import BaseChannelLayer
from .typing import ASGIApp, Message, Scope

__all__ = ["Worker"]

logger = logging.getLogger("hubbub.worker")

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _Inbox:
    """One application instance's queue, knowing whether the instance is waiting for more."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Message] = asyncio.Queue()
        self.waiting = False

    async def receive(self) -> Message:
        self.waiting = True
        try:
            return await self.queue.get()
        finally:
            self.waiting = False

    @property
    def idle(self) -> bool:
        return self.waiting and self.queue.empty()


class Worker(StatelessServer):
    """Receives from ``channels`` on ``channel_layer`` and runs ``application`` for them.

    ``max_applications`` is kept for Channels' signature; a worker has exactly one
    application instance per channel, so it never reaches that bound. ``on_ready`` (keyword
    only) is called once the worker listens and SIGINT/SIGTERM would stop it cleanly: ``runworker``
    prints its "listening" line there, so a script that waits for it may signal at once.
    """

    #: Seconds a stopping worker gives its instances to finish the messages they hold.
    shutdown_timeout: float = 10.0

    def __init__(
        self,
        application: ASGIApp,
        channels: Sequence[str],
        channel_layer: BaseChannelLayer,
        max_applications: int = 1000,
        *,
        on_ready: Callable[[], None] | None = None,
    ):
        # asgiref.server has no annotations.
        super().__init__(application, max_applications=max_applications)  # type: ignore[no-untyped-call]
        self.channels = list(channels)
        self.channel_layer = channel_layer
        if self.channel_layer is None:
            raise ValueError("Worker needs a channel layer: configure CHANNEL_LAYERS.")
        self._inboxes: dict[str, _Inbox] = {}
        self._stopping: asyncio.Future[None] | None = None
        self.on_ready = on_ready  # called once SIGINT and SIGTERM stop the worker cleanly

    def run(self) -> None:
        """Serve until SIGINT or SIGTERM, then shut down cleanly."""
        asyncio.run(self.arun())

    async def arun(self) -> None:
        """Serve until ``stop()`` (which SIGINT and SIGTERM call), then shut down cleanly."""
        loop = asyncio.get_running_loop()
        self._stopping = loop.create_future()
        signals = _STOP_SIGNALS if threading.current_thread() is threading.main_thread() else ()
        for sig in signals:
            loop.add_signal_handler(sig, self.stop, sig)
        handler = loop.create_task(self.handle())
        if self.on_ready is not None:
            self.on_ready()
        try:
            await asyncio.wait({handler, self._stopping}, return_when=asyncio.FIRST_COMPLETED)
            if handler.done():
                handler.result()  # a listener failed: report it
        finally:
            for sig in signals:
                loop.remove_signal_handler(sig)
            handler.cancel()
            await asyncio.gather(handler, return_exceptions=True)
            await self._drain_and_stop()

    def stop(self, sig: int | None = None) -> None:
        """Ask the running worker to stop taking messages and shut down (from its event loop's thread)."""
        if self._stopping is not None and not self._stopping.done():
            if sig is not None:
                logger.info("received %s, stopping", signal.Signals(sig).name)
            self._stopping.set_result(None)

    async def handle(self) -> None:
        """Listen on every channel until cancelled (or one listener fails)."""
        await asyncio.gather(*(self.listener(channel) for channel in self.channels))

    async def listener(self, channel: str) -> None:
        """Receive from ``channel`` and pass each message to its application instance."""
        while True:
            message = await self.channel_layer.receive(channel)
            if not message.get("type"):
                logger.error("message on channel %r has no 'type'; dropped: %r", channel, message)
                continue
            scope = {"type": "channel", "channel": channel}
            self.get_or_create_application_instance(channel, scope).put_nowait(message)

    def get_or_create_application_instance(self, scope_id: str, scope: Scope) -> asyncio.Queue[Message]:
        """The queue of the instance for ``scope_id``, starting the instance if needed."""
        details = self.application_instances.get(scope_id)
        if details is not None:
            details["last_used"] = time.time()
            queue: asyncio.Queue[Message] = details["input_queue"]
            return queue
        inbox = _Inbox()
        future = asyncio.ensure_future(self.application(scope, inbox.receive, self._sender(scope)))
        future.add_done_callback(lambda f: self._instance_ended(scope_id, f))
        self._inboxes[scope_id] = inbox
        self.application_instances[scope_id] = {
            "input_queue": inbox.queue,
            "future": future,
            "scope": scope,
            "last_used": time.time(),
        }
        return inbox.queue

    def _sender(self, scope: Scope) -> Any:
        async def send(message: Message) -> None:
            await self.application_send(scope, message)

        return send

    async def application_send(self, scope: Scope, message: Message) -> None:
        """Background consumers have no client to answer; what they send is dropped."""
        logger.debug("channel %r application sent %r (ignored: a worker has no client)", scope["channel"], message)

    def _instance_ended(self, scope_id: str, future: asyncio.Future[None]) -> None:
        if self.application_instances.get(scope_id, {}).get("future") is future:
            del self.application_instances[scope_id]
            del self._inboxes[scope_id]
        if future.cancelled():
            return
        exc = future.exception()
        if exc is not None:
            logger.error(
                "application for channel %r failed; a new instance starts with the next message",
                scope_id,
                exc_info=exc,
            )

    async def _drain_and_stop(self) -> None:
        deadline = time.monotonic() + self.shutdown_timeout
        while time.monotonic() < deadline and not all(inbox.idle for inbox in self._inboxes.values()):
            await asyncio.sleep(0.02)
        futures: list[asyncio.Future[None]] = [d["future"] for d in self.application_instances.values()]
        for future in futures:
            future.cancel()
        await asyncio.gather(*futures, return_exceptions=True)
        close: Any | None = getattr(self.channel_layer, "close", None)
        if close is not None:
            await close()
        logger.info("worker stopped")

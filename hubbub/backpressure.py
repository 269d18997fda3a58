"""Bounded outgoing buffers: a client that stops reading cannot make the server's memory grow.

Theory of operation. A server's WebSocket ``send`` (uvicorn's, for one) returns at
once while the socket is writable, and waits, writing nothing, while the
transport's buffer is over its high-water mark because the client is not
reading. An ``Outbox`` stands between a consumer and that ``send``:

* Fast path, nothing queued: the awaitable the server's ``send`` returns is stepped
  once, in place (a coroutine directly; any other awaitable, such as an
  ``asyncio.Future`` or Granian's, through its ``__await__`` iterator). On a
  writable socket that one step completes it, so the frame is written with no
  task, future or queue involved. An awaitable whose iterator cannot be stepped
  (no ``send``/``throw``) is awaited by a writer task instead.
* Slow path: if the step suspends (the socket is not writable), the half-run
  awaitable is handed to a writer task, which finishes it and then sends what
  queued behind it, in order. Handlers are not held up: while a writer exists,
  ``send`` only appends to the queue. The writer ends when the queue is empty;
  the next ``send`` takes the fast path again. One task per stall, none per message.
* A server's ``send`` that raises ``OSError`` (uvicorn's ``ClientDisconnected``, a reset
  connection) means the client is gone, on either path: the frame is discarded and the
  consumer is told (``on_error``), which ends it as a disconnect; the handler does not see
  the error. Any other error ends the consumer with that error.
* The queue is bounded in frames and in payload size (``len`` of the text or
  bytes). Past either bound the policy decides: ``"close"`` discards the queue,
  queues a 1013 close frame ("try again later") and tells the consumer, which
  ends as if the client had gone; ``"drop_oldest"`` discards frames from the
  front of the queue until the new one fits. Every discarded frame is counted,
  on the outbox and in ``hubbub.metrics``.

None of this waits, so it is a plain method, ``push``, which ``send`` wraps: the fastlane
(``hubbub.fastlane``) pushes group messages from the sender's task. ``push_prepared`` hands
an already-encoded frame, shared by a whole fan-out, to a server that offers to write such
frames (the ``hubbub.prepared_frames`` scope extension), when nothing is queued ahead of it.

The close frame itself can only leave once the client reads again: no server can
write to a socket whose peer's window is shut. Memory stays bounded meanwhile: the
transport holds at most its high-water mark plus one frame. A client that never reads
again is cut off by the kernel (``hubbub.tcp_user_timeout``) and the outbox sees its
pending send fail; a consumer that has ended waits for that (``flush_timeout()``), so a
client that reads again before it is cut off still gets its close. Where the kernel
cannot cut clients off, the queued frames are abandoned after ``FLUSH_TIMEOUT``. Either
way the connection is counted in ``hubbub.metrics.stalled_clients`` and logged (one line
per path per ``LOG_INTERVAL``).

Every outbox is known to ``going_away()`` (weakly), which closes them all with 1001 when a
server lets the application close its WebSockets on shutdown (hubbub's runserver).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Generator
from types import CoroutineType
from typing import Any

from . import metrics, tcp_user_timeout
from .ratelog import RateLimitedLog
from .typing import Message, Scope, Send

__all__ = [
    "CLOSE",
    "DROP_OLDEST",
    "GOING_AWAY",
    "Outbox",
    "OutboxState",
    "POLICIES",
    "TRY_AGAIN_LATER",
    "check_limits",
    "going_away",
]

CLOSE = "close"
DROP_OLDEST = "drop_oldest"
POLICIES = (CLOSE, DROP_OLDEST)
#: RFC 6455 §7.4.1 via the IANA registry: "Try Again Later", the server is overloaded.
TRY_AGAIN_LATER = 1013
#: RFC 6455 §7.4.1: "Going Away", the server is shutting down.
GOING_AWAY = 1001
#: How long a consumer that has ended waits for its queued frames (a close, say) to leave,
#: beyond the kernel's cut-off of stalled clients where that is in place (``flush_timeout()``).
FLUSH_TIMEOUT = 10.0
#: A connection lost after its frames waited less than this is a client leaving during a
#: burst, not a stalled one: not counted as stalled.
STALL_REPORT_AFTER = 1.0
#: Seconds between two log lines about stalled clients on the same path (the rest are counted).
LOG_INTERVAL = 10.0

_stalled_log = RateLimitedLog(logging.getLogger("hubbub.backpressure"), logging.WARNING, LOG_INTERVAL)


def check_limits(max_messages: Any, max_bytes: Any, policy: Any, owner: str) -> None:
    """Raise ``TypeError`` / ``ValueError`` naming ``owner`` unless the outbox settings are usable."""
    for name, value in (("outbox_max_messages", max_messages), ("outbox_max_bytes", max_bytes)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{owner}.{name} must be an int, got {value!r}")
        if value < 1:
            raise ValueError(f"{owner}.{name} must be at least 1, got {value}")
    if policy not in POLICIES:
        raise ValueError(f"{owner}.outbox_policy must be one of {POLICIES}, got {policy!r}")


def _prepared_writer(scope: Scope | None, send: Send) -> Callable[[Any], bool] | None:
    """The ``write`` of the server's ``hubbub.prepared_frames`` scope extension, if it has one.

    Only when ``send`` is the server's own ``send`` (the extension names it): an ASGI middleware
    that wraps ``send`` (to log or change frames, say) must see every frame, so past one the
    prepared frames take the ordinary way.
    """
    extension = ((scope or {}).get("extensions") or {}).get("hubbub.prepared_frames")
    if not isinstance(extension, dict) or extension.get("send") != send:
        return None
    write = extension.get("write")
    return write if callable(write) else None


def _size(message: Message) -> int:
    payload = message.get("text")
    if payload is None:
        payload = message.get("bytes")
    return len(payload) if payload is not None else 0


class _SuspendedSend:
    """Awaitable finishing a server ``send`` that was stepped once and suspended on ``pending``.

    ``coro`` is the coroutine itself, or the ``__await__`` iterator of another awaitable:
    both take ``send``, ``throw`` and ``close``.
    """

    __slots__ = ("coro", "pending")

    def __init__(self, coro: Coroutine[Any, Any, Any] | Generator[Any, Any, Any], pending: Any):
        self.coro, self.pending = coro, pending

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, pending = self.coro, self.pending
        while True:
            try:
                sent = yield pending
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # cancellation and the like go to the coroutine
                try:
                    pending = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    pending = coro.send(sent)
                except StopIteration as stop:
                    return stop.value


def _stepper(sending: Any) -> Coroutine[Any, Any, Any] | Generator[Any, Any, Any] | None:
    """What to step ``sending`` (the server's ``send(message)``) with: itself if a coroutine, else its
    ``__await__`` iterator when that takes ``send`` and ``throw``; None when it can only be awaited."""
    if type(sending) is CoroutineType:
        coroutine: Coroutine[Any, Any, Any] = sending
        return coroutine
    try:
        await_ = sending.__await__
    except AttributeError:
        raise TypeError(f"the server's send() returned {type(sending).__name__}, not an awaitable") from None
    iterator: Generator[Any, Any, Any] = await_()
    if hasattr(iterator, "send") and hasattr(iterator, "throw"):
        return iterator
    return None


_open: weakref.WeakSet[Outbox] = weakref.WeakSet()


async def going_away(timeout: float, code: int = GOING_AWAY) -> int:
    """Send close ``code`` to every open WebSocket of this process; wait up to ``timeout`` s for them to take it.

    For servers that let the application choose its close code on shutdown (hubbub's
    runserver calls it before uvicorn's own shutdown). Returns how many connections were
    told; those whose client does not read keep their close queued.
    """
    outboxes: list[Outbox] = [outbox for outbox in list(_open) if outbox.state is OutboxState.OPEN]
    if not outboxes:
        return 0
    await asyncio.wait([asyncio.ensure_future(outbox.go_away(code)) for outbox in outboxes], timeout=timeout)
    return len(outboxes)


def flush_timeout() -> float:
    """Seconds an ended consumer's frames get to leave: past the kernel's cut-off where there is one.

    With ``TCP_USER_TIMEOUT`` in place a client that never reads again is cut off first, so a
    client that does read again, however late, still gets its close (1013, say).
    """
    return FLUSH_TIMEOUT + (tcp_user_timeout.installed or 0.0)


def describe(scope: Scope | None) -> str:
    """``client host:port path`` for log lines."""
    if not scope:
        return "a WebSocket"
    client = scope.get("client")
    peer = f"{client[0]}:{client[1]}" if client else "unknown client"
    return f"{peer} on {scope.get('path', '?')}"


class OutboxState(enum.Enum):
    """Whether the connection's close has been sent or queued, and by whom."""

    #: No close yet: frames pass (or queue).
    OPEN = "open"
    #: The application sent its close (or refused the handshake): ``going_away`` leaves it alone.
    CLOSED = "closed"
    #: Closed by the outbox, for overflow or shutdown: its close is the last frame, later ones are discarded.
    CLOSING = "closing"


_CLOSING = OutboxState.CLOSING  # for the per-frame test: a module global is read faster than an enum member


class Outbox:
    """The frames of one connection that the server has not taken yet, bounded."""

    __slots__ = (
        "_send",
        "max_messages",
        "max_bytes",
        "policy",
        "queue",
        "bytes",
        "writer",
        "dropped",
        "state",
        "_on_overflow",
        "_on_error",
        "scope",
        "stalled_since",
        "reported",
        "prepared_write",
        "__weakref__",
    )

    def __init__(
        self,
        send: Send,
        max_messages: int,
        max_bytes: int,
        policy: str,
        on_overflow: Callable[[], None],
        on_error: Callable[[BaseException], None],
        scope: Scope | None = None,
    ):
        self._send = send
        self.max_messages, self.max_bytes, self.policy = max_messages, max_bytes, policy
        #: The frames waiting behind a stalled send; made at the first, dropped once drained
        #: (an empty deque is 760 bytes, which every idle connection would hold).
        self.queue: deque[Message] | None = None
        self.bytes = 0  # payload size of the frames in ``queue``
        self.writer: asyncio.Task[None] | None = None
        #: Frames this connection lost to the policy.
        self.dropped = 0
        #: Whether a close has gone or is queued, and whose (see ``OutboxState``).
        self.state = OutboxState.OPEN
        self._on_overflow, self._on_error = on_overflow, on_error
        #: The connection's scope, named in log lines.
        self.scope = scope
        #: Loop time at which the server's ``send`` last stopped taking frames at once.
        self.stalled_since = 0.0
        #: This connection was counted and logged as a stalled client.
        self.reported = False
        #: The server's writer of prepared frames (``push_prepared``), when it offers one.
        self.prepared_write: Callable[[Any], bool] | None = _prepared_writer(scope, send)
        _open.add(self)

    async def send(self, message: Message) -> None:
        """Hand ``message`` to the server now if it takes it at once, else queue it (bounded)."""
        self.push(message)

    def push_prepared(self, frame: Any) -> None:
        """``push(frame.message)``, written by the server's prepared-frames writer when it can be at once.

        ``frame`` is a ``hubbub.frames.PreparedFrame``, shared by every member of one fan-out. The
        writer is used only when nothing is queued here (so the frame keeps its place) and the
        outbox is not closing; it says False when a plain send would not be written at once either,
        and the frame then takes the ordinary way. Counted exactly as a ``websocket.send``.
        """
        write = self.prepared_write
        if write is not None and self.writer is None and self.state is not _CLOSING and write(frame):
            metrics.messages_out.inc("websocket.send")
            return
        self.push(frame.message)

    def push(self, message: Message) -> None:
        """``send``'s body, which never waits: hand ``message`` to the server now, else queue it (bounded)."""
        metrics.messages_out.inc(message["type"])
        if self.state is _CLOSING:  # closed for overflow or shutdown: the close frame is the last to go
            self._drop(1)
            return
        if message["type"] in ("websocket.close", "websocket.http.response.start"):
            self.state = OutboxState.CLOSED
        if self.writer is None:
            sending = self._send(message)
            stepper = sending if type(sending) is CoroutineType else _stepper(sending)  # a coroutine: no call
            first: Awaitable[Any] = sending
            if stepper is not None:
                try:
                    pending = stepper.send(None)
                except StopIteration:
                    return
                except OSError as exc:  # the client is gone: the consumer ends as if it had disconnected
                    self._on_error(exc)
                    return
                first = _SuspendedSend(stepper, pending)
            loop = asyncio.get_running_loop()
            self.stalled_since = loop.time()
            self.writer = loop.create_task(self._drain(first))
            return
        queue = self.queue
        if queue is None:
            queue = self.queue = deque()
        if message["type"] != "websocket.send":
            queue.append(message)  # accept, close: never counted, never dropped
            return
        size = _size(message)
        if len(queue) >= self.max_messages or self.bytes + size > self.max_bytes:
            if self.policy == CLOSE:
                self._close(queue)
                return
            if size > self.max_bytes:  # larger than the whole budget on its own
                self._drop(1)
                return
            queue = self._make_room(queue, size)
        queue.append(message)
        self.bytes += size

    def _make_room(self, queue: deque[Message], size: int) -> deque[Message]:
        """Drop frames from the front of ``queue`` until one of ``size`` fits; the queue now."""
        dropped = 0
        kept: deque[Message] = deque()
        while queue and (len(queue) + len(kept) >= self.max_messages or self.bytes + size > self.max_bytes):
            oldest = queue.popleft()
            if oldest["type"] != "websocket.send":
                kept.append(oldest)
                continue
            self.bytes -= _size(oldest)
            dropped += 1
        kept.extend(queue)
        self.queue = kept
        self._drop(dropped)
        return kept

    def _close(self, queue: deque[Message]) -> None:
        """Discard the queue and the frame that did not fit; queue the 1013 close."""
        self._drop(1 + sum(1 for message in queue if message["type"] == "websocket.send"))
        queue.clear()
        self.bytes = 0
        queue.append({"type": "websocket.close", "code": TRY_AGAIN_LATER, "reason": "try again later"})
        self.state = OutboxState.CLOSING
        metrics.slow_client_closes.inc()
        self._on_overflow()

    def _drop(self, count: int) -> None:
        if count:
            self.dropped += count
            metrics.drops.inc("slow_client", count)

    async def go_away(self, code: int = GOING_AWAY, reason: str = "server shutting down") -> None:
        """Close the connection with ``code`` (after what is queued) unless a close was already sent.

        Frames the consumer sends afterwards are discarded (and counted), as after an overflow:
        the server refuses anything after a close.
        """
        if self.state is not OutboxState.OPEN:
            return
        await self.send({"type": "websocket.close", "code": code, "reason": reason})
        self.state = OutboxState.CLOSING

    async def _drain(self, first: Awaitable[Any]) -> None:
        """Finish the suspended send, then everything queued behind it, in order."""
        try:
            await first
            while self.queue:
                message = self.queue.popleft()
                if message["type"] == "websocket.send":
                    self.bytes -= _size(message)
                await self._send(message)
            self.queue = None
        except OSError as exc:  # the connection is gone (cut off while stalled): the consumer ends as a disconnect
            if asyncio.get_running_loop().time() - self.stalled_since >= STALL_REPORT_AFTER:
                self._report("the connection was lost while it was not reading")
            self.queue = None
            self.bytes = 0
            self._on_error(exc)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self._on_error(exc)
        finally:
            self.writer = None

    def _report(self, what: str) -> None:
        """Count and log (rate-limited per path) a client that stopped reading; once per connection."""
        if self.reported:
            return
        self.reported = True
        metrics.stalled_clients.inc()
        unsent = len(self.queue or ()) + 1  # the send the writer was stuck on, and what queued behind it
        stalled = asyncio.get_running_loop().time() - self.stalled_since
        path = self.scope.get("path") if self.scope else None
        _stalled_log.log(
            ("stalled", path),
            "Stalled WebSocket client %s: %s (%.1f s without taking a frame, %d frame(s) not delivered)",
            describe(self.scope),
            what,
            stalled,
            unsent,
        )

    async def flush(self) -> None:
        """Give queued frames up to ``flush_timeout()`` seconds to leave, then abandon them."""
        writer = self.writer
        if writer is None:
            return
        timeout = flush_timeout()
        try:
            await asyncio.wait({writer}, timeout=timeout)
        finally:
            if not writer.done():
                self._report(f"its frames were abandoned after {timeout:g} s; the server keeps the socket")
                writer.cancel()

"""Cut off clients that stop reading: ``TCP_USER_TIMEOUT`` on the server's listening sockets.

Why this module exists. When a client stops reading, its TCP receive window shuts and
the server's data waits in the kernel and in the server's transport. No ASGI server
hubbub runs on ever gives up on such a connection: uvicorn's ``transport.close()``
(after the application returns, after its close timer, after a ping timeout, on
shutdown) waits for a buffer that never drains, and TCP itself keeps the connection
alive because the client acknowledges the kernel's window probes. Each such client
pins its descriptor and megabytes of buffers, forever. The application cannot reach the
transport to abort it (the ASGI interface has no such message).

The kernel can: with ``TCP_USER_TIMEOUT`` (Linux, tcp(7)), a connection whose sent data
stays unacknowledged, or whose queued data stays unsent because the peer's window is
zero, for longer than the timeout is aborted; the server's socket reports ``ETIMEDOUT``
(the server then drops the connection) and the client gets a reset. A connection that is
merely idle is not affected. Sockets accepted from a listening socket inherit the option.

``manage.py runserver`` sets it on the socket it binds. Under any other server (uvicorn,
gunicorn), ``install()`` runs once per process, at the first WebSocket connection, and
sets it on every listening TCP socket of the process and on the connections already
accepted from them. It finds them through ``/proc/self/fd``: the one part that is not an
ordinary public interface, and Linux only. Elsewhere it logs once that it could not, and
stalled clients are left to the server.

The timeout is ``HUBBUB_STALLED_CLIENT_TIMEOUT`` (seconds, default ``DEFAULT_TIMEOUT``;
``None`` leaves the sockets alone).
"""

from __future__ import annotations

import logging
import os
import socket
import stat
from collections.abc import Iterator
from typing import Any

__all__ = ["DEFAULT_TIMEOUT", "apply", "configured_timeout", "install", "protect"]

logger = logging.getLogger("hubbub.tcp_user_timeout")

#: Seconds a client may leave the server's data unread before the kernel cuts it off: the
#: same as the WebSocket ping timeout hubbub's runserver uses (daphne's 30 s).
DEFAULT_TIMEOUT = 30.0
#: The option's number where the platform has it (Linux), else None.
_TCP_USER_TIMEOUT = getattr(socket, "TCP_USER_TIMEOUT", None)

_installed = False
#: The timeout set on this process's server sockets, once set (None: not set, or impossible here).
installed: float | None = None


def configured_timeout() -> float | None:
    """``HUBBUB_STALLED_CLIENT_TIMEOUT`` from the Django settings (the default without Django)."""
    try:
        from django.conf import settings

        value: Any = getattr(settings, "HUBBUB_STALLED_CLIENT_TIMEOUT", DEFAULT_TIMEOUT)
    except Exception:  # settings not configured: a plain ASGI application
        return DEFAULT_TIMEOUT
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ValueError(f"HUBBUB_STALLED_CLIENT_TIMEOUT must be a positive number of seconds or None, got {value!r}")
    return float(value)


def apply(sock: socket.socket, seconds: float) -> None:
    """Set ``TCP_USER_TIMEOUT`` on ``sock`` (a listening socket passes it on to what it accepts)."""
    if _TCP_USER_TIMEOUT is None:
        raise OSError("this platform has no TCP_USER_TIMEOUT")
    sock.setsockopt(socket.IPPROTO_TCP, _TCP_USER_TIMEOUT, int(seconds * 1000))


def protect(sock: socket.socket) -> None:
    """The configured timeout on a listening socket the caller binds (one warning where impossible)."""
    seconds = configured_timeout()
    if seconds is None:
        return
    try:
        apply(sock, seconds)
    except OSError as exc:
        logger.warning("Clients that stop reading cannot be cut off here (%s)", exc)
        return
    global installed
    installed = seconds


def install() -> None:
    """Once per process: the configured timeout on this process's listening TCP sockets and their connections."""
    global _installed, installed
    if _installed:
        return
    _installed = True
    try:
        seconds = configured_timeout()
    except ValueError as exc:
        logger.error("%s: clients that stop reading are not cut off", exc)
        return
    if seconds is None:
        return
    try:
        if _TCP_USER_TIMEOUT is None:
            raise OSError("this platform has no TCP_USER_TIMEOUT")
        listeners, accepted = _server_sockets()
    except OSError as exc:
        logger.warning(
            "Clients that stop reading cannot be cut off here (%s): HUBBUB_STALLED_CLIENT_TIMEOUT needs Linux", exc
        )
        return
    try:
        for sock in listeners + accepted:
            apply(sock, seconds)
    finally:
        for sock in listeners + accepted:
            sock.close()  # a duplicate descriptor: the server's own socket stays open
    if listeners:
        installed = seconds
        logger.info(
            "Clients that leave data unread for %g s are cut off (TCP_USER_TIMEOUT on %d listening socket(s))",
            seconds,
            len(listeners),
        )


def _server_sockets() -> tuple[list[socket.socket], list[socket.socket]]:
    """Duplicates of the listening TCP sockets of this process, and of the connections accepted from them."""
    listeners: list[socket.socket] = []
    others: list[socket.socket] = []
    for sock in _tcp_sockets():
        try:
            listening = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
        except OSError:
            listening = 0
        (listeners if listening else others).append(sock)
    addresses: set[Any] = {sock.getsockname() for sock in listeners}
    ports = {address[1] for address in addresses}
    accepted: list[socket.socket] = []
    for sock in others:
        try:
            local = sock.getsockname()
        except OSError:
            local = None
        if local is not None and (local in addresses or (local[1] in ports and _wildcard(addresses, local[1]))):
            accepted.append(sock)
        else:
            sock.close()
    return listeners, accepted


def _wildcard(addresses: set[Any], port: int) -> bool:
    return any(address[1] == port and address[0] in ("0.0.0.0", "::") for address in addresses)


def _tcp_sockets() -> Iterator[socket.socket]:
    """A duplicate of each TCP socket this process has open (raises ``OSError`` without ``/proc``)."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            if not stat.S_ISSOCK(os.fstat(fd).st_mode):
                continue
            duplicate = os.dup(fd)
        except OSError:  # closed meanwhile
            continue
        try:
            sock = socket.socket(fileno=duplicate)
        except OSError:  # not a socket Python can wrap
            os.close(duplicate)
            continue
        if sock.family in (socket.AF_INET, socket.AF_INET6) and sock.type == socket.SOCK_STREAM:
            yield sock
        else:
            sock.close()

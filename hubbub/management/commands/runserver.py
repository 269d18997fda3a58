"""``manage.py runserver``: the project's ASGI application over HTTP and WebSocket on one port.

Replaces Django's (and staticfiles') runserver when ``"hubbub"`` comes before
``"django.contrib.staticfiles"`` in ``INSTALLED_APPS``. It keeps their options,
autoreloader and static files serving, and serves through uvicorn in place of
Django's WSGI server; ``--noasgi`` gives Django's own server back.

WebSocket limits are daphne's, so code moving from Channels meets the same ones:
messages up to 1 MiB, a ping every 20 s, the connection dropped when a pong takes
longer than 30 s. The WebSocket protocol is ``hubbub.uvicorn_ws``'s: uvicorn's sans-I/O
one, lighter per idle connection and able to write one prepared frame to many sockets
(a group message forwarded as is). Per-message compression stays off: it costs memory
on every connection.

Shutdown (SIGTERM, SIGINT, Ctrl-C) is bounded whatever the clients do: every WebSocket
gets close 1001 "going away" first (uvicorn alone sends 1012), clients get
``GOING_AWAY_GRACE`` seconds to answer, then uvicorn's own shutdown has
``SHUTDOWN_TIMEOUT`` seconds before it cancels what is left. Clients that stop reading are
cut off by the kernel after ``HUBBUB_STALLED_CLIENT_TIMEOUT`` (see hubbub.tcp_user_timeout).
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import sys
from datetime import datetime
from types import FrameType
from typing import Any

import uvicorn
from django.apps import apps
from django.conf import settings
from django.core.management import CommandError, CommandParser
from django.db import connections

from hubbub import backpressure, gctune, tcp_user_timeout  # noqa: I001 (below the lines other branches edit)
from hubbub.logging import uvicorn_log_config
from hubbub.routing import get_default_application
from hubbub.typing import ASGIApp

if apps.is_installed("django.contrib.staticfiles"):
    from django.contrib.staticfiles.management.commands.runserver import Command as RunserverCommand
else:
    from django.core.management.commands.runserver import Command as RunserverCommand  # type: ignore[assignment]

#: Largest WebSocket message accepted, in bytes (daphne's and autobahn's default: 1 MiB).
WS_MAX_SIZE = 1024 * 1024
#: Seconds between keep-alive pings (daphne: 20).
WS_PING_INTERVAL = 20.0
#: Seconds to wait for the pong before dropping the connection (daphne: 30).
WS_PING_TIMEOUT = 30.0
#: uvicorn protocol class for WebSocket (see the module docstring and hubbub.uvicorn_ws).
WS_PROTOCOL = "hubbub.uvicorn_ws:WebSocketProtocol"
#: Connections held at once; past it, new requests and handshakes get 503 (a development
#: server: production sizes its own, docs/deployment.md).
LIMIT_CONCURRENCY = 1000
#: Seconds an idle HTTP keep-alive connection stays open between requests (uvicorn's default, stated).
TIMEOUT_KEEP_ALIVE = 5
#: Seconds WebSocket clients get to answer the 1001 close on shutdown.
GOING_AWAY_GRACE = 2.0
#: Seconds uvicorn's shutdown waits for connections and tasks before cancelling them: with the
#: grace above, the process exits within about 8 s of the signal (docs/deployment.md).
SHUTDOWN_TIMEOUT = 5

_BIND_ERRORS: dict[int | None, str] = {  # keyed by OSError.errno, which may be None
    errno.EACCES: "You don't have permission to access that port.",
    errno.EADDRINUSE: "That port is already in use.",
    errno.EADDRNOTAVAIL: "That IP address can't be assigned to.",
}


class Command(RunserverCommand):
    help = "Starts a development server for the ASGI application: HTTP and WebSocket on one port."

    # Set by Django's runserver handle() from the addrport argument (django-stubs does not declare them).
    addr: str
    port: str
    _raw_ipv6: bool

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "--noasgi",
            action="store_false",
            dest="use_asgi",
            help="Run Django's own WSGI development server instead (no WebSocket).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["use_asgi"] and not getattr(settings, "ASGI_APPLICATION", None):
            raise CommandError(
                "ASGI_APPLICATION is not set: point it at your application "
                "(e.g. ASGI_APPLICATION = 'mysite.asgi.application'), or run with --noasgi."
            )
        try:
            tcp_user_timeout.configured_timeout()
            gctune.configured_policy()
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        super().handle(*args, **options)

    def inner_run(self, *args: Any, **options: Any) -> None:
        if not options["use_asgi"]:
            return super().inner_run(*args, **options)
        from django.utils import autoreload

        autoreload.raise_last_exception()
        if not options["skip_checks"]:
            self.stdout.write("Performing system checks...\n\n")
            self.check(display_num_errors=True)
        self.check_migrations()
        for conn in connections.all(initialized_only=True):
            conn.close()  # the checks' connections belong to this thread; requests open their own
        application = self.get_asgi_application(**options)
        self._serve(application, options)

    def get_asgi_application(self, **options: Any) -> ASGIApp:
        """``ASGI_APPLICATION``, wrapped to serve static files where Django's runserver would."""
        application = get_default_application()
        if options.get("use_static_handler") and (settings.DEBUG or options.get("insecure_serving")):
            from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

            # django-stubs types it for Django's ASGIHandler and Mapping messages; any ASGI application is wrapped.
            static: ASGIApp = ASGIStaticFilesHandler(application)  # type: ignore[arg-type,assignment]
            return static
        return application

    def _serve(self, application: ASGIApp, options: Any) -> None:
        verbosity = options["verbosity"]
        config = uvicorn.Config(
            application,
            host=self._display_addr().strip("[]"),
            port=int(self.port),
            ws=WS_PROTOCOL,
            ws_max_size=WS_MAX_SIZE,
            ws_ping_interval=WS_PING_INTERVAL,
            ws_ping_timeout=WS_PING_TIMEOUT,
            ws_per_message_deflate=False,
            timeout_graceful_shutdown=SHUTDOWN_TIMEOUT,
            limit_concurrency=LIMIT_CONCURRENCY,
            timeout_keep_alive=TIMEOUT_KEEP_ALIVE,
            lifespan="off",
            log_level="info" if verbosity > 0 else "warning",
            log_config=uvicorn_log_config(),  # ?token= values redacted from the access lines
            access_log=verbosity > 0,
            server_header=False,
        )
        server = _Server(config)
        try:
            sockets = [self._bind(config.host, config.port)]
        except OSError as exc:
            # Django's wording; os._exit because sys.exit would only end the reloader's thread.
            self.stderr.write(f"Error: {_BIND_ERRORS.get(exc.errno, exc)}")
            self.stderr.flush()
            os._exit(1)
        self._announce(sockets[0].getsockname()[1])
        try:
            server.run(sockets=sockets)
        except KeyboardInterrupt:
            shutdown_message = options.get("shutdown_message", "")
            if shutdown_message:
                self.stdout.write(shutdown_message)
            sys.exit(0)

    @staticmethod
    def _bind(host: str, port: int) -> socket.socket:
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            tcp_user_timeout.protect(sock)  # inherited by every accepted connection
            sock.bind((host, port))
        except OSError:
            sock.close()
            raise
        return sock

    def _display_addr(self) -> str:
        if self._raw_ipv6:
            return f"[{self.addr}]"
        return "0.0.0.0" if self.addr == "0" else self.addr

    def _announce(self, port: int) -> None:
        quit_command = "CTRL-BREAK" if sys.platform == "win32" else "CONTROL-C"
        self.stdout.write(
            f"{datetime.now().strftime('%B %d, %Y - %X')}\n"
            f"Django version {self.get_version()}, using settings {settings.SETTINGS_MODULE!r}\n"
            f"hubbub: serving {settings.ASGI_APPLICATION} (HTTP + WebSocket) at "
            f"{self.protocol}://{self._display_addr()}:{port}/\n"
            f"Quit the server with {quit_command}."
        )
        self.stdout.flush()


class _Server(uvicorn.Server):
    """uvicorn's server, saying 1001 "going away" to WebSockets before its own shutdown (which says 1012),
    and freezing the start-up heap once it listens (``HUBBUB_GC``, see hubbub.gctune)."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        gctune.started()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await backpressure.going_away(GOING_AWAY_GRACE)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + GOING_AWAY_GRACE
        while self.server_state.connections and loop.time() < deadline:
            await asyncio.sleep(0.05)
        await super().shutdown(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.should_exit:  # a second signal, whichever: stop waiting for connections
            self.force_exit = True
        super().handle_exit(sig, frame)

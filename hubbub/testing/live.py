"""A live server for browser and client tests: the ASGI application, HTTP and WebSocket.

``ChannelsLiveServerTestCase`` (a ``TransactionTestCase``, like Django's
``LiveServerTestCase``) and the pytest fixture ``hubbub_live_server``
(``hubbub.testing.pytest``) both run ``ASGI_APPLICATION`` under uvicorn in a thread of
the test process. Sharing the process means the server sees the test database and the
settings the test changed, whatever the database (an in-memory SQLite one included,
which Django's test runner shares between threads), with no fork and no pickling.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any, ClassVar

from django.conf import settings
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.test import TransactionTestCase
from django.test.utils import modify_settings

from ..routing import get_default_application
from ..typing import ASGIApp

__all__ = [
    "ChannelsLiveServerTestCase",
    "LiveServer",
    "TEST_DATABASE_PREFIX",
    "get_default_application",
    "make_application",
    "set_database_connection",
]

#: Django's prefix for test database names (``test_`` + ``NAME`` unless ``TEST['NAME']`` is set).
TEST_DATABASE_PREFIX = "test_"


def set_database_connection() -> None:
    """Point ``DATABASES['default']`` at its test database.

    The live server here runs in the test process and needs no such step; this is for a
    server you start in a process of its own, which has to find the test database by name.
    """
    default = settings.DATABASES["default"]
    test = default.get("TEST") or {}
    default["NAME"] = test.get("NAME") or TEST_DATABASE_PREFIX + default["NAME"]


def make_application(*, static_wrapper: type | None = None) -> ASGIApp:
    """``ASGI_APPLICATION``, wrapped in ``static_wrapper`` (e.g. ``ASGIStaticFilesHandler``) if given."""
    application = get_default_application()
    if static_wrapper is not None:
        application = static_wrapper(application)
    return application


class LiveServer:
    """uvicorn serving an ASGI application in a daemon thread, on a free port of ``host``.

    ``host`` is what URLs use; the socket is bound to the loopback address it names.
    """

    def __init__(self, application: ASGIApp, host: str = "localhost"):
        self.application = application
        self.host = host
        self.port = 0
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> LiveServer:
        import uvicorn

        bind_host = "127.0.0.1" if self.host == "localhost" else self.host
        family = socket.AF_INET6 if ":" in bind_host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((bind_host, 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.application, lifespan="off", log_level="warning", ws="hubbub.uvicorn_ws:WebSocketProtocol"
        )
        self._server = uvicorn.Server(config)
        failure: list[BaseException] = []

        def serve() -> None:
            try:
                asyncio.run(self._server.serve(sockets=[sock]))
            except BaseException as exc:  # reported to start() below
                failure.append(exc)
            finally:
                sock.close()

        self._thread = threading.Thread(target=serve, name=f"hubbub-live-server-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"the live server did not start: {failure[0] if failure else 'unknown error'}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the live server did not start within {timeout} s")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        self._server = self._thread = None


class ChannelsLiveServerTestCase(TransactionTestCase):
    """A ``TransactionTestCase`` with the project's ASGI application served for real.

    ``self.live_server_url`` (``http://localhost:PORT``) and ``self.live_server_ws_url``
    (``ws://localhost:PORT``) point at it; static files are served when ``serve_static``.
    """

    host: ClassVar[str] = "localhost"
    serve_static: ClassVar[bool] = True

    _live_server: ClassVar[LiveServer]
    _live_server_settings: ClassVar[modify_settings]

    @property
    def live_server_url(self) -> str:
        return self._live_server.url

    @property
    def live_server_ws_url(self) -> str:
        return self._live_server.ws_url

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        cls._live_server_settings = modify_settings(ALLOWED_HOSTS={"append": cls.host})
        cls._live_server_settings.enable()
        try:
            wrapper = ASGIStaticFilesHandler if cls.serve_static and _staticfiles_configured() else None
            cls._live_server = LiveServer(make_application(static_wrapper=wrapper), cls.host).start()
        except BaseException:
            cls._live_server_settings.disable()
            super().tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls) -> None:
        cls._live_server.stop()
        cls._live_server_settings.disable()
        super().tearDownClass()


def _staticfiles_configured() -> bool:
    from django.apps import apps

    return apps.is_installed("django.contrib.staticfiles") and bool(getattr(settings, "STATIC_URL", None))

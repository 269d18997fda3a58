"""gunicorn's worker class for hubbub: uvicorn with hubbub's WebSocket settings, behind a local proxy.

``gunicorn myproject.asgi:application --worker-class hubbub.gunicorn_worker.HubbubWorker``

- The WebSocket limits of ``manage.py runserver`` (and daphne): 1 MiB messages, pings
  every 20 s, 30 s for the pong, no per-message compression; and its WebSocket protocol,
  ``hubbub.uvicorn_ws`` (prepared frames, less memory per idle connection).
- The client's address and scheme come from the proxy's ``X-Forwarded-For`` /
  ``X-Forwarded-Proto`` when the connection comes from gunicorn's
  ``--forwarded-allow-ips`` (default ``127.0.0.1,::1``) or through a unix socket
  (``--bind unix:...``; see ``hubbub.proxy``). uvicorn's own handling, which this
  replaces, ignored them on a unix socket: ``REMOTE_ADDR`` was ``None`` and the scheme ``http``.
- ``?token=`` values are redacted from the lines uvicorn writes to gunicorn's logs.
- ``HUBBUB_GC``'s start-up freeze (``hubbub.gctune``) once the server runs: at its first
  notification to gunicorn, right after start-up.

Needs ``pip install gunicorn uvicorn-worker``.
"""

from __future__ import annotations

from typing import Any

from uvicorn_worker import UvicornWorker

from . import gctune
from .logging import RedactTokens
from .proxy import ProxyHeadersMiddleware

__all__ = ["HubbubWorker"]


class HubbubWorker(UvicornWorker):
    wsgi: Any  # gunicorn's name for the loaded application (an ASGI one here)

    # runserver's values (hubbub.management.commands.runserver, which needs Django set up to import).
    CONFIG_KWARGS = {
        "ws": "hubbub.uvicorn_ws:WebSocketProtocol",
        "ws_max_size": 1024 * 1024,
        "ws_ping_interval": 20.0,
        "ws_ping_timeout": 30.0,
        "ws_per_message_deflate": False,
        "lifespan": "off",
        "proxy_headers": False,  # hubbub.proxy does it, unix sockets included
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for handler in [*self.log.error_log.handlers, *self.log.access_log.handlers]:
            handler.addFilter(RedactTokens())

    def load_wsgi(self) -> None:
        """Load the application, wrapped to take the client's address from the trusted proxy."""
        super().load_wsgi()
        self.wsgi = ProxyHeadersMiddleware(self.wsgi, trusted_hosts=self.cfg.forwarded_allow_ips)

    async def callback_notify(self) -> None:
        """uvicorn calls it at its first tick after start-up, then every gunicorn ``timeout``."""
        gctune.started()  # once per process; later calls only check a flag
        await super().callback_notify()

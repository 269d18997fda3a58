"""A real nginx for tests: Debian's ``nginx-light``, on a free 127.0.0.1 port, stopped by PID.

``nginx(config)`` takes the text of an ``http { ... }``-level configuration (the part a
document shows, e.g. a ``server`` block with its ``upstream``) with ``{listen}``,
``{upstream}`` and ``{prefix}`` placeholders, wraps it in a minimal main context
(foreground, no daemon, one worker, logs and temporary files in a private directory)
and starts ``nginx -p <prefix> -c <file>``. Nothing is written outside that directory.

Tests that need nginx call ``require_nginx()`` first: it skips loudly where nginx is not
installed, and fails under ``CI=true``, where ``make test`` is expected to have it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.servers import Process, free_port

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)

_MAIN = """\
daemon off;
master_process on;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
events {{ worker_connections 4096; }}
http {{
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
{body}
}}
"""


def require_nginx() -> str:
    """nginx's path; skips the test where it is missing (fails under CI=true)."""
    if NGINX is None:
        message = "nginx is not installed (Debian: apt-get install nginx-light)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true: {message}")
        pytest.skip(message)
    return NGINX


def nginx(config: str, upstream: str = "", port: int | None = None, extra: dict[str, str] | None = None) -> Process:
    """An nginx process serving ``config`` (http-level text with ``{listen}``, ``{upstream}``, ``{prefix}``).

    ``upstream`` is substituted for ``{upstream}`` (e.g. ``127.0.0.1:8123`` or
    ``unix:/tmp/x.sock``); ``extra`` maps more placeholders to values. The process has
    ``.url``, ``.prefix`` (the private directory) and ``.error_log()``.
    """
    binary = require_nginx()
    port = port or free_port()
    prefix = Path(tempfile.mkdtemp(prefix="hubbub-nginx-"))
    (prefix / "tmp").mkdir()
    values = {"listen": f"127.0.0.1:{port}", "upstream": upstream, "prefix": str(prefix), **(extra or {})}
    body = config
    for key, value in values.items():
        body = body.replace("{" + key + "}", value)
    conf = prefix / "nginx.conf"
    conf.write_text(_MAIN.format(prefix=prefix, body=body))
    process = Process([binary, "-p", str(prefix), "-c", str(conf)], prefix, port=port)
    process.url = f"http://127.0.0.1:{port}"  # type: ignore[attr-defined]
    process.ws_url = f"ws://127.0.0.1:{port}"  # type: ignore[attr-defined]
    process.prefix = prefix  # type: ignore[attr-defined]
    process.error_log = lambda: (prefix / "error.log").read_text(errors="replace")  # type: ignore[attr-defined]
    process.access_log = lambda: (prefix / "access.log").read_text(errors="replace")  # type: ignore[attr-defined]
    return process

"""What the deployment tests share: docs/deployment.md's blocks made runnable, TLS, clients from another address.

The nginx configuration and the commands come out of docs/deployment.md; only paths,
ports and names are substituted, and each substitution must find its text, so a changed
document fails the test instead of silently testing something else.
"""

from __future__ import annotations

import asyncio
import json
import shlex
import ssl
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import httpx
import websockets

from tests.docblocks import block

#: Clients connect from this loopback address, so the address the application reports can only
#: have come from nginx's X-Forwarded-For (nginx itself talks to the server from 127.0.0.1 or a socket).
CLIENT_ADDRESS = "127.0.0.2"


def substitute(text: str, replacements: dict[str, str]) -> str:
    """``text`` with each key replaced; a key that does not occur is an error (the document changed)."""
    for old, new in replacements.items():
        if old not in text:
            raise AssertionError(f"{old!r} is no longer in the document's block:\n{text}")
        text = text.replace(old, new)
    return text


def nginx_config(heading: str, replacements: dict[str, str], containing: str = "server {") -> str:
    """The nginx block under ``heading`` in deployment.md, with ``replacements`` applied."""
    return substitute(block("deployment.md", heading, "nginx", containing), replacements)


def command(heading: str, program: str, replacements: dict[str, str], language: str = "sh") -> list[str]:
    """The ``program ...`` command of a shell block under ``heading`` (continuation lines joined), as argv."""
    text = block("deployment.md", heading, language, program).replace("\\\n", " ")
    for line in text.splitlines():
        if line.strip().startswith(program + " "):
            return shlex.split(substitute(line, replacements))
    raise AssertionError(f"no {program} command under {heading!r}")


def socket_directory() -> Path:
    """A directory for unix sockets that nginx's worker can reach (it runs as ``nobody`` when started as root)."""
    directory = Path(tempfile.mkdtemp(prefix="hubbub-sockets-"))
    directory.chmod(0o755)
    return directory


def open_to_nginx(sock: Path) -> None:
    """Let nginx's worker connect to ``sock``: what ``Group=www-data`` with ``UMask=0007`` does in production."""
    sock.chmod(0o666)


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A throw-away certificate and key for ``localhost`` (so nginx's ``$scheme`` is really https)."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return cert, key


def https_client(base_url: str) -> httpx.Client:
    """An HTTP client that accepts the test certificate and connects from ``CLIENT_ADDRESS``."""
    return httpx.Client(
        base_url=base_url,
        transport=httpx.HTTPTransport(local_address=CLIENT_ADDRESS, verify=False),
        timeout=10,
    )


def insecure_tls() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def first_message(url: str, headers: dict[str, str] | None = None, **kwargs: Any) -> Any:
    """Connect from ``CLIENT_ADDRESS`` and return the first message, decoded from JSON."""
    if url.startswith("wss:"):
        kwargs.setdefault("ssl", insecure_tls())
    async with websockets.connect(
        url, additional_headers=headers, local_addr=(CLIENT_ADDRESS, 0), open_timeout=10, **kwargs
    ) as ws:
        return json.loads(await asyncio.wait_for(ws.recv(), 10))

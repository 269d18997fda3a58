"""An HTTP client for tests, talking to the application in-process."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote, urlparse

from ..typing import ASGIApp
from .application import ApplicationCommunicator

__all__ = ["HttpCommunicator"]


class HttpCommunicator(ApplicationCommunicator):
    """Makes one HTTP request; ``get_response()`` returns ``{'status', 'headers', 'body'}``."""

    def __init__(
        self,
        application: ASGIApp,
        method: str,
        path: str,
        body: bytes = b"",
        headers: Iterable[tuple[bytes, bytes]] | None = None,
    ):
        parsed = urlparse(path)
        self.scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method.upper(),
            "scheme": "http",
            "path": unquote(parsed.path),
            "raw_path": parsed.path.encode("latin-1"),
            "query_string": parsed.query.encode("utf-8"),
            "root_path": "",
            "headers": list(headers or []),
            "client": ("127.0.0.1", 12345),
            "server": ("testserver", 80),
        }
        if not isinstance(body, bytes):
            raise TypeError("body must be bytes")
        self.body = body
        self.sent_request = False
        super().__init__(application, self.scope)  # type: ignore[no-untyped-call]  # asgiref.testing has no annotations

    async def get_response(self, timeout: float = 1) -> dict[str, Any]:
        """Send the request (once) and collect the whole response."""
        if not self.sent_request:
            self.sent_request = True
            await self.send_input({"type": "http.request", "body": self.body})
        start = await self.receive_output(timeout)
        if start["type"] != "http.response.start":
            raise AssertionError(f"Expected http.response.start, got {start!r}")
        response = {"status": start["status"], "headers": start.get("headers", []), "body": b""}
        while True:
            chunk = await self.receive_output(timeout)
            if chunk["type"] != "http.response.body":
                raise AssertionError(f"Expected http.response.body, got {chunk!r}")
            response["body"] += chunk.get("body", b"")
            if not chunk.get("more_body", False):
                break
        return response

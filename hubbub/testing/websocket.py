"""A WebSocket client for tests, talking to the application in-process."""

from __future__ import annotations

import json
from typing import Any, Iterable, List, Optional, Tuple, Union
from urllib.parse import unquote, urlparse

from ..generic.websocket import TEST_COMMUNICATOR_KEY
from ..typing import ASGIApp
from .application import ApplicationCommunicator

__all__ = ["WebsocketCommunicator"]


class WebsocketCommunicator(ApplicationCommunicator):
    """Connects to ``application`` at ``path`` as a WebSocket client would.

    ``connect()`` returns ``(True, subprotocol)`` when accepted and ``(False, close_code)``
    when refused. The scope carries ``"hubbub.test_communicator": True``: a JSON consumer
    given a frame it cannot decode then raises (``ValueError``), as Channels' do, where
    under a real server it closes the connection (see docs/features.md).
    """

    def __init__(
        self,
        application: ASGIApp,
        path: str,
        headers: Optional[Iterable[Tuple[bytes, bytes]]] = None,
        subprotocols: Optional[List[str]] = None,
        spec_version: Optional[Union[int, str]] = None,
    ):
        if not isinstance(path, str):
            raise TypeError(f"Expected str, got {type(path).__name__}")
        parsed = urlparse(path)
        self.scope = {
            "type": "websocket",
            "asgi": {"version": "3.0", "spec_version": str(spec_version) if spec_version else "2.3"},
            "http_version": "1.1",
            "scheme": "ws",
            "path": unquote(parsed.path),
            "raw_path": parsed.path.encode("latin-1"),
            "query_string": parsed.query.encode("utf-8"),
            "root_path": "",
            "headers": list(headers or []),
            "subprotocols": list(subprotocols or []),
            "client": ("127.0.0.1", 12345),
            "server": ("testserver", 80),
            "extensions": {"websocket.http.response": {}},
            TEST_COMMUNICATOR_KEY: True,  # a JSON consumer raises for a bad frame, as in Channels
        }
        super().__init__(application, self.scope)
        self.response_headers: Optional[List[Tuple[bytes, bytes]]] = None

    async def connect(self, timeout: float = 1) -> Tuple[bool, Any]:
        """Open the connection; ``(accepted, subprotocol or close code)``."""
        await self.send_input({"type": "websocket.connect"})
        response = await self.receive_output(timeout)
        if response["type"] == "websocket.close":
            return False, response.get("code", 1000)
        if response["type"] == "websocket.http.response.start":
            # A denial response: read its body too, and report the HTTP status.
            while True:
                body = await self.receive_output(timeout)
                if not body.get("more_body"):
                    break
            return False, response.get("status", 403)
        if response["type"] != "websocket.accept":
            raise AssertionError(f"Expected websocket.accept or websocket.close, got {response['type']!r}")
        self.response_headers = response.get("headers")
        return True, response.get("subprotocol")

    async def send_to(self, text_data: Optional[str] = None, bytes_data: Optional[bytes] = None) -> None:
        """Send one frame: text or bytes, not both."""
        if (text_data is None) == (bytes_data is None):
            raise ValueError("send_to() takes exactly one of text_data or bytes_data")
        if text_data is not None:
            if not isinstance(text_data, str):
                raise TypeError("text_data must be a str")
            await self.send_input({"type": "websocket.receive", "text": text_data})
        else:
            if not isinstance(bytes_data, bytes):
                raise TypeError("bytes_data must be bytes")
            await self.send_input({"type": "websocket.receive", "bytes": bytes_data})

    async def send_json_to(self, data: Any) -> None:
        """Send ``data`` as a JSON text frame."""
        await self.send_to(text_data=json.dumps(data))

    async def receive_from(self, timeout: float = 1) -> Union[str, bytes]:
        """The next frame's data; ``AssertionError`` if the app sent something else (e.g. a close)."""
        response = await self.receive_output(timeout)
        if response["type"] != "websocket.send":
            raise AssertionError(f"Expected type 'websocket.send', but was '{response['type']}'")
        if response.get("text") is not None:
            return response["text"]
        if response.get("bytes") is not None:
            return response["bytes"]
        raise AssertionError(f"websocket.send without text or bytes: {response!r}")

    async def receive_json_from(self, timeout: float = 1) -> Any:
        """The next frame, decoded from JSON (it must be a text frame)."""
        payload = await self.receive_from(timeout)
        if not isinstance(payload, str):
            raise AssertionError(f"Expected a JSON text frame, got bytes: {payload!r}")
        return json.loads(payload)

    async def disconnect(self, code: int = 1000, timeout: float = 1) -> None:
        """Close from the client side and wait for the application to finish."""
        await self.send_input({"type": "websocket.disconnect", "code": code})
        await self.wait(timeout)

"""The ASGI vocabulary hubbub speaks, as type aliases and ``TypedDict``s.

Everything here is for readers and type checkers; nothing is checked at run
time. Messages are plain dicts on the wire; these classes only name their keys.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Dict, Iterable, List, Literal, Optional, Tuple, TypedDict, Union

Scope = Dict[str, Any]
Message = Dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

Headers = Iterable[Tuple[bytes, bytes]]


class URLRoute(TypedDict):
    args: Tuple[Any, ...]
    kwargs: Dict[str, Any]


class WebSocketConnectEvent(TypedDict):
    type: Literal["websocket.connect"]


class WebSocketReceiveEvent(TypedDict, total=False):
    type: Literal["websocket.receive"]
    text: Optional[str]
    bytes: Optional[bytes]


class WebSocketDisconnectEvent(TypedDict, total=False):
    type: Literal["websocket.disconnect"]
    code: int
    reason: Optional[str]


class WebSocketAcceptEvent(TypedDict, total=False):
    type: Literal["websocket.accept"]
    subprotocol: Optional[str]
    headers: List[Tuple[bytes, bytes]]


class WebSocketSendEvent(TypedDict, total=False):
    type: Literal["websocket.send"]
    text: Optional[str]
    bytes: Optional[bytes]


class WebSocketCloseEvent(TypedDict, total=False):
    type: Literal["websocket.close"]
    code: int
    reason: Optional[str]


class HTTPRequestEvent(TypedDict, total=False):
    type: Literal["http.request"]
    body: bytes
    more_body: bool


class HTTPResponseStartEvent(TypedDict, total=False):
    type: Literal["http.response.start"]
    status: int
    headers: List[Tuple[bytes, bytes]]


class HTTPResponseBodyEvent(TypedDict, total=False):
    type: Literal["http.response.body"]
    body: bytes
    more_body: bool


class HTTPDisconnectEvent(TypedDict):
    type: Literal["http.disconnect"]


class LayerMessage(TypedDict, total=False):
    """A channel-layer message: any msgpack-able dict with a ``type`` naming its handler."""

    type: str


ASGIEvent = Union[
    WebSocketConnectEvent,
    WebSocketReceiveEvent,
    WebSocketDisconnectEvent,
    HTTPRequestEvent,
    HTTPDisconnectEvent,
]

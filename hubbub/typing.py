"""The ASGI vocabulary hubbub speaks: five thin type aliases, imported everywhere.

Scopes and messages are plain dicts on the wire and in hubbub's code, so they are
typed as such. The precise shape of each scope and event (``TypedDict``s with
``Literal`` type discriminators) is asgiref's (``asgiref.typing``), which hubbub
does not repeat; nothing here is checked at run time.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

__all__ = ["ASGIApp", "Message", "Receive", "Scope", "Send"]

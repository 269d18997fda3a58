"""Keep WebSocket tokens out of log files.

A browser cannot set headers on a WebSocket, so tokens travel in the URL
(``?token=...``) or, with hubbub's convention, in the ``Sec-WebSocket-Protocol``
header (``hubbub.token.<token>``, see docs/auth.md). uvicorn writes the path with
its query string into its access lines (``"GET /x?token=... HTTP/1.1" 200`` and
``"WebSocket /ws/?token=..." [accepted]``), so every log file would hold every
token. ``RedactTokens`` is a logging filter that rewrites those values to
``[redacted]`` before any handler formats the record; put it on the handlers
(``manage.py runserver`` does so by itself; docs/deployment.md shows the
configuration for uvicorn's ``--log-config`` and for Django's ``LOGGING``).
"""

from __future__ import annotations

import copy
import logging
import re
from typing import Any, Dict

__all__ = ["REDACTED", "RedactTokens", "redact", "uvicorn_log_config"]

#: What a secret is replaced with.
REDACTED = "[redacted]"

# A query parameter whose name ends in "token" (token, access_token, auth_token, ...).
_QUERY_TOKEN = re.compile(r"(?i)((?:^|[?&;\s])[\w.\-]*token=)[^&;\s\"'#]+")
# hubbub's subprotocol carrying a token (hubbub.auth.TOKEN_SUBPROTOCOL_PREFIX).
_SUBPROTOCOL_TOKEN = re.compile(r"(hubbub\.token\.)[^\s,;\"']+")


def redact(text: str) -> str:
    """``text`` with every ``...token=<value>`` and ``hubbub.token.<value>`` value replaced by ``[redacted]``."""
    if "token" not in text.lower():  # the common case, without running the expressions
        return text
    text = _QUERY_TOKEN.sub(lambda m: m.group(1) + REDACTED, text)
    return _SUBPROTOCOL_TOKEN.sub(lambda m: m.group(1) + REDACTED, text)


def _redact_value(value: Any) -> Any:
    return redact(value) if isinstance(value, str) else value


class RedactTokens(logging.Filter):
    """Rewrites token values in a record's message and arguments; never drops a record.

    The arguments keep their shape (uvicorn's access formatter unpacks them), so the
    filter works with any formatter. Attach it to handlers, not loggers: a logger's
    filters do not see records its children propagate.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_redact_value(arg) for arg in record.args)
        elif isinstance(record.args, dict):
            record.args = {key: _redact_value(value) for key, value in record.args.items()}
        if isinstance(record.msg, str):
            redacted = redact(record.msg)
            if redacted != record.msg:
                if record.args:  # the template itself names a token: format first, then redact
                    redacted = redact(record.getMessage())
                    record.args = ()
                record.msg = redacted
        return True


def uvicorn_log_config() -> Dict[str, Any]:
    """uvicorn's default logging configuration with ``RedactTokens`` on both of its handlers."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["redact_tokens"] = {"()": "hubbub.logging.RedactTokens"}
    for handler in config["handlers"].values():
        handler.setdefault("filters", []).append("redact_tokens")
    return config

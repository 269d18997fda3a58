"""Turning layer messages into bytes and back: msgpack or JSON, optionally Fernet-encrypted.

The sender serialises, so a message that cannot cross Redis fails where it was sent,
with the offending value's type in the error, instead of somewhere in a receiver.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any, Callable, Optional, Sequence, Union

FORMATS = ("msgpack", "json")


class Serializer:
    """Encodes message dicts for one layer: ``dumps`` on send, ``loads`` on receive."""

    def __init__(
        self, format: str = "msgpack", symmetric_encryption_keys: Optional[Sequence[Union[str, bytes]]] = None
    ):
        if format == "msgpack":
            import msgpack

            self._dump: Callable[[Any], bytes] = lambda m: msgpack.packb(m, use_bin_type=True)
            self._load: Callable[[bytes], Any] = lambda b: msgpack.unpackb(b, raw=False)
        elif format == "json":
            self._dump = lambda m: json.dumps(m, separators=(",", ":")).encode()
            self._load = json.loads
        else:
            raise ValueError(f"serializer_format must be one of {FORMATS}, not {format!r}")
        self.format = format
        self._fernet = _make_fernet(symmetric_encryption_keys) if symmetric_encryption_keys else None

    def dumps(self, message: dict) -> bytes:
        """The bytes for ``message``; ``TypeError`` naming the value type that cannot be encoded."""
        try:
            data = self._dump(message)
        except (TypeError, ValueError, OverflowError) as exc:
            bad = _find_unencodable(message, self._dump)
            what = f"a value of type {type(bad).__name__} ({bad!r:.80})" if bad is not None else "a value"
            raise TypeError(
                f"Cannot send message of type {message.get('type')!r}: {what} cannot be encoded with "
                f"{self.format} ({exc}). Convert it to str, int, float, bool, None, bytes, list or dict first."
            ) from exc
        return self._fernet.encrypt(data) if self._fernet is not None else data

    def loads(self, data: bytes) -> dict:
        """The message in ``data``; raises if it cannot be decrypted or decoded."""
        if self._fernet is not None:
            data = self._fernet.decrypt(data)
        return self._load(data)


def _make_fernet(keys: Sequence[Union[str, bytes]]) -> Any:
    """A MultiFernet that encrypts with the first key and decrypts with any of them."""
    from cryptography.fernet import Fernet, MultiFernet

    if isinstance(keys, (str, bytes)):
        raise ValueError("symmetric_encryption_keys must be a list of keys, not a single key")
    fernets = []
    for key in keys:
        raw = key.encode() if isinstance(key, str) else key
        # Any string is accepted as a key: its SHA-256 makes the 32 bytes Fernet needs.
        fernets.append(Fernet(base64.urlsafe_b64encode(hashlib.sha256(raw).digest())))
    return MultiFernet(fernets)


def _find_unencodable(value: Any, dump: Callable[[Any], bytes]) -> Any:
    """The innermost value in ``value`` that ``dump`` rejects (for the error message)."""
    children: Sequence[Any]
    if isinstance(value, dict):
        children = [*value.keys(), *value.values()]
    elif isinstance(value, (list, tuple)):
        children = value
    else:
        return value
    for child in children:
        try:
            dump([child])
        except (TypeError, ValueError, OverflowError):
            return _find_unencodable(child, dump)
    return None

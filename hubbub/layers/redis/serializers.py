"""Turning layer messages into bytes and back: msgpack or JSON, optionally Fernet-encrypted.

The same names and rules as ``channels_redis.serializers``, so custom formats written
for it work here: subclass ``BaseMessageSerializer`` (``as_bytes`` / ``from_bytes``),
``registry.register_serializer("name", cls)``, then ``"serializer_format": "name"``.

``serialize`` encodes, encrypts (with ``symmetric_encryption_keys``) and prepends
``random_prefix_length`` random bytes; ``deserialize`` undoes the three. hubbub adds one
thing: a message that cannot be encoded fails at the sender with a ``TypeError``
naming the offending value's type, instead of somewhere in a receiver.
"""

from __future__ import annotations

import abc
import base64
import hashlib
import json
import random
from collections.abc import Callable, Sequence
from typing import Any

__all__ = [
    "BaseMessageSerializer",
    "JSONSerializer",
    "MsgPackSerializer",
    "SerializerDoesNotExist",
    "SerializersRegistry",
    "registry",
]

Key = str | bytes

#: Seconds past ``expiry`` an encrypted message stays readable (clock skew between processes).
DECRYPT_GRACE = 10


class SerializerDoesNotExist(KeyError):
    """No serializer is registered under this format name."""

    def __str__(self) -> str:
        if len(self.args) == 2:
            return f"No serializer registered for format {self.args[0]!r} (registered: {', '.join(self.args[1])})"
        return super().__str__()


class BaseMessageSerializer(abc.ABC):
    """Encodes one layer's messages; subclasses say how a message becomes bytes."""

    #: The name used in error messages (a subclass may set its own).
    format = ""

    def __init__(
        self,
        symmetric_encryption_keys: Sequence[Key] | None = None,
        random_prefix_length: int = 0,
        expiry: float | None = None,
    ):
        self.random_prefix_length = random_prefix_length
        self.expiry = expiry
        self.crypter: Any = None
        if symmetric_encryption_keys:
            if isinstance(symmetric_encryption_keys, (str, bytes)):
                raise ValueError("symmetric_encryption_keys must be a list of keys, not a single key")
            from cryptography.fernet import MultiFernet

            self.crypter = MultiFernet([self.make_fernet(key) for key in symmetric_encryption_keys])

    def make_fernet(self, key: Key) -> Any:
        """A Fernet for ``key``: any string works, its SHA-256 makes the 32 bytes Fernet needs."""
        from cryptography.fernet import Fernet

        raw = key.encode("utf-8") if isinstance(key, str) else key
        return Fernet(base64.urlsafe_b64encode(hashlib.sha256(raw).digest()))

    @abc.abstractmethod
    def as_bytes(self, message: Any) -> bytes:
        """``message`` encoded (no encryption, no prefix)."""

    @abc.abstractmethod
    def from_bytes(self, data: bytes) -> Any:
        """The message ``as_bytes`` encoded into ``data``."""

    def serialize(self, message: Any) -> bytes:
        """The bytes to store: encoded, encrypted if keys were given, after the random prefix."""
        try:
            data = self.as_bytes(message)
        except (TypeError, ValueError, OverflowError) as exc:
            raise self._unencodable(message, exc) from exc
        if self.crypter is not None:
            data = self.crypter.encrypt(data)
        if self.random_prefix_length > 0:
            data = random.randbytes(self.random_prefix_length) + data
        return data

    def deserialize(self, data: bytes) -> Any:
        """The message in ``data``; raises if it cannot be decrypted (or has expired) or decoded."""
        if self.random_prefix_length > 0:
            data = data[self.random_prefix_length :]
        if self.crypter is not None:
            ttl = None if self.expiry is None else int(self.expiry + DECRYPT_GRACE)
            data = self.crypter.decrypt(data, ttl)
        return self.from_bytes(data)

    def _unencodable(self, message: Any, exc: Exception) -> TypeError:
        bad = _find_unencodable(message, self.as_bytes)
        what = f"a value of type {type(bad).__name__} ({bad!r:.80})" if bad is not None else "a value"
        kind = message.get("type") if isinstance(message, dict) else None
        return TypeError(
            f"Cannot send message of type {kind!r}: {what} cannot be encoded with "
            f"{self.format or type(self).__name__} ({exc}). "
            "Convert it to str, int, float, bool, None, bytes, list or dict first."
        )


class MsgPackSerializer(BaseMessageSerializer):
    """msgpack with its default options (bytes stay bytes, strings stay strings)."""

    format = "msgpack"

    def as_bytes(self, message: Any) -> bytes:
        import msgpack

        return msgpack.packb(message)

    def from_bytes(self, data: bytes) -> Any:
        import msgpack

        return msgpack.unpackb(data)


class JSONSerializer(BaseMessageSerializer):
    """JSON, UTF-8 encoded (no bytes values: use msgpack for those)."""

    format = "json"

    def as_bytes(self, message: Any) -> bytes:
        return json.dumps(message).encode("utf-8")

    def from_bytes(self, data: bytes) -> Any:
        return json.loads(data)


class SerializersRegistry:
    """Serializer classes by format name; layers build theirs from ``serializer_format``."""

    def __init__(self) -> None:
        self._registry: dict[Any, type] = {}

    def register_serializer(self, format: Any, serializer_class: type) -> None:
        """Make ``format`` name ``serializer_class`` (replacing any class registered before)."""
        if not isinstance(serializer_class, type) or not (
            issubclass(serializer_class, BaseMessageSerializer)
            or (hasattr(serializer_class, "serialize") and hasattr(serializer_class, "deserialize"))
        ):
            raise AssertionError(
                f"Cannot register {serializer_class!r} for format {format!r}: it must be a class that subclasses "
                "BaseMessageSerializer or has both serialize() and deserialize()"
            )
        self._registry[format] = serializer_class

    def get_serializer(self, format: Any, *args: Any, **kwargs: Any) -> Any:
        """A new serializer for ``format``; ``SerializerDoesNotExist`` if none is registered."""
        try:
            serializer_class = self._registry[format]
        except (KeyError, TypeError):
            raise SerializerDoesNotExist(format, sorted(map(str, self._registry))) from None
        return serializer_class(*args, **kwargs)


registry = SerializersRegistry()
registry.register_serializer("json", JSONSerializer)
registry.register_serializer("msgpack", MsgPackSerializer)


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

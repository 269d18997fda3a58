"""Redis commands as bytes (RESP2: an array of bulk strings), for the layers' command pipe.

Why not redis-py's ``Connection.pack_command``: every layer operation is one
command, and packing is on that hot path. Measured on this code base (8-argument
``EVALSHA``, no hiredis), redis-py's packer took 2.4 times as long as this one; it
also accepts more than the layers ever send. Writing stays redis-py's
(``send_packed_command``).

What an argument becomes: ``str`` its UTF-8 bytes; ``bytes``, ``bytearray`` and
``memoryview`` their bytes; ``int`` and ``float`` their decimal text (``repr``, as
redis-py writes them). Anything else is refused with a ``TypeError``, ``bool``
included: ``True`` is neither clearly ``1`` nor ``"True"``, so the caller says which.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

#: What ``encode_command`` accepts, for its error message.
ACCEPTED = "str, bytes, bytearray, memoryview, int or float"


def encode_command(args: Sequence[Any]) -> bytes:
    """One command (name first, then its arguments) as RESP bytes; ``TypeError`` for an argument of another type."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        kind = type(arg)
        if kind is str:
            data = arg.encode()
        elif kind is bytes:
            data = arg
        elif kind is int or kind is float:
            data = repr(arg).encode()
        else:
            data = _encode_other(arg)
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def _encode_other(arg: Any) -> bytes:
    """The less usual types (subclasses, buffers), or a ``TypeError`` naming the refused type."""
    if isinstance(arg, bool):
        raise TypeError(f"A Redis command argument cannot be a bool ({arg!r}): pass 1/0 or a string")
    if isinstance(arg, (bytes, bytearray, memoryview)):
        return bytes(arg)
    if isinstance(arg, str):
        return str(arg).encode()
    if isinstance(arg, int):
        return repr(int(arg)).encode()
    if isinstance(arg, float):
        return repr(float(arg)).encode()
    raise TypeError(f"A Redis command argument must be {ACCEPTED}, not {type(arg).__name__}: {arg!r:.60}")

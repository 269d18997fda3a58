"""What the Redis layers store and exchange, without any I/O.

Keys (``p`` is the layer's ``prefix``)::

    p:c:<channel>   list   worker channel (a name without '!'): frames, one receiver each
    p:i:<process>   list   a process's inbox, present on every shard: frames for its channels
    p:n:<process>   hash   channel -> direct frames sent to it and not yet received (capacity)
    p:g:<group>     zset   member channel -> expiry time (counts, discards, ageing out)
    p:r:<group>     zset   route -> expiry time of its newest member (fan-out targets)
    p:t:<group>     pub/sub channel of a group (pub/sub layer; the process inbox name is reused
                    as its pub/sub channel there, and worker channel names as theirs)
    p:e:<group>     hash   a history group's position: epoch, offset (the last one given out)
    p:h:<group>     stream a history group's kept messages, fields o (offset) and m (payload)
    p:j:<group>     zset   present channel -> joined_at (the listing order)
    p:b:<group>     zset   present channel -> time of its last heartbeat (ageing out)
    p:m:<group>     hash   present channel -> its user id and info, serialised

A route is where one copy of a group message goes: ``p:<process>`` (the process
fans out to its members of the group in memory) or ``c:<capacity>:<channel>`` for
a worker channel member. So ``group_send`` costs one push per process, not per member.

A frame is ``kind | field \\0 field ...``. Kinds: ``d`` direct message
(target, expires_ms, seq, payload), ``g`` group message (group, expires_ms, seq,
payload), ``a`` / ``x`` a group join / leave made for this process's channel by
someone else (group, channel). ``seq`` is ``<epoch>:<offset>`` on messages to a
group with history (Redis fills it in when it numbers the message, so every process
delivers the same stamp) and empty otherwise.
"""

from __future__ import annotations

import binascii
from typing import List, NamedTuple, Optional, Tuple

DIRECT, GROUP, JOIN, LEAVE = b"d", b"g", b"a", b"x"
SEP = b"\0"


class Frame(NamedTuple):
    """A decoded frame: ``target`` is the channel (``d``) or group (``g``, ``a``, ``x``)."""

    kind: bytes
    target: str
    expires_ms: int = 0
    seq: bytes = b""
    payload: bytes = b""
    channel: str = ""  # for join/leave: the member channel


def frame_head(kind: bytes, target: str, expires_ms: int) -> bytes:
    """A message frame up to its ``seq`` field: a script numbering the message appends the rest."""
    return b"".join((kind, target.encode(), SEP, b"%d" % expires_ms, SEP))


def message_frame(kind: bytes, target: str, expires_ms: int, payload: bytes, seq: bytes = b"") -> bytes:
    return b"".join((kind, target.encode(), SEP, b"%d" % expires_ms, SEP, seq, SEP, payload))


def parse_seq(seq: bytes) -> Tuple[str, int]:
    """``b'<epoch>:<offset>'`` → ``(epoch, offset)``."""
    epoch, offset = seq.split(b":", 1)
    return epoch.decode(), int(offset)


def membership_frame(kind: bytes, group: str, channel: str) -> bytes:
    return b"".join((kind, group.encode(), SEP, channel.encode()))


def parse_frame(data: bytes) -> Frame:
    """Split a frame; ``ValueError`` if it is not one."""
    kind = data[:1]
    if kind in (DIRECT, GROUP):
        target, expires, seq, payload = data[1:].split(SEP, 3)
        return Frame(kind, target.decode(), int(expires), seq, payload)
    if kind in (JOIN, LEAVE):
        group, channel = data[1:].split(SEP, 1)
        return Frame(kind, group.decode(), channel=channel.decode())
    raise ValueError(f"not a hubbub frame: {data[:40]!r}")


def process_of(channel: str) -> Optional[str]:
    """The process id in a process-local name (``'specific.P!x'`` → ``'P'``), else ``None``."""
    bang = channel.find("!")
    if bang < 0:
        return None
    return channel[:bang].rsplit(".", 1)[-1]


def shard_index(name: str, shards: int) -> int:
    """The shard holding ``name``: the same on every process, whatever the order of calls."""
    if shards == 1:
        return 0
    return binascii.crc32(name.encode()) % shards


class Keys:
    """Key names under one prefix."""

    def __init__(self, prefix: str):
        self.prefix = prefix

    def channel(self, channel: str) -> str:
        return f"{self.prefix}:c:{channel}"

    def inbox(self, process: str) -> str:
        return f"{self.prefix}:i:{process}"

    def pending(self, process: str) -> str:
        return f"{self.prefix}:n:{process}"

    def members(self, group: str) -> str:
        return f"{self.prefix}:g:{group}"

    def routes(self, group: str) -> str:
        return f"{self.prefix}:r:{group}"

    def position(self, group: str) -> str:
        return f"{self.prefix}:e:{group}"

    def history(self, group: str) -> str:
        return f"{self.prefix}:h:{group}"

    def presence(self, group: str) -> List[str]:
        """The presence keys of ``group``: joined, heartbeats, member data (the order scripts expect)."""
        return [f"{self.prefix}:j:{group}", f"{self.prefix}:b:{group}", f"{self.prefix}:m:{group}"]

    def topic(self, group: str) -> str:
        """The pub/sub channel of ``group`` (pub/sub layer)."""
        return f"{self.prefix}:t:{group}"

    def pattern(self) -> str:
        """A SCAN pattern matching every key of this prefix (glob characters escaped)."""
        escaped = "".join("\\" + ch if ch in "*?[]\\" else ch for ch in self.prefix)
        return escaped + ":*"


def process_route(process: str) -> str:
    return f"p:{process}"


def channel_route(channel: str, capacity: int) -> str:
    return f"c:{capacity}:{channel}"


def parse_channel_route(route: bytes) -> Tuple[str, int]:
    """``b'c:100:name'`` → ``('name', 100)``."""
    _, capacity, channel = route.decode().split(":", 2)
    return channel, int(capacity)

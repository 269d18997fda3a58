"""What the Redis layers store and exchange, without any I/O.

Keys (``p`` is the layer's ``prefix``, ``{T}`` the hash tag of the shard the name
hashes to, see ``shard_tags``)::

    p:{T}:c:<channel>   list   worker channel (a name without '!'): frames, one receiver each
    p:{T}:i:<process>   list   a process's inbox on shard T (one per shard): frames for its channels
    p:{T}:n:<process>   hash   channel -> direct frames sent to it and not yet received (capacity)
    p:{T}:g:<group>     zset   member channel -> expiry time (counts, discards, ageing out)
    p:{T}:r:<group>     zset   route -> expiry time of its newest member (fan-out targets)
    p:{T}:t:<group>     pub/sub channel of a group (pub/sub layer; the process inbox name is
                        reused as its pub/sub channel there, and worker channel names as theirs)
    p:{T}:e:<group>     hash   a history group's position: epoch, offset (the last one given
                        out), node (the cluster node that numbered it; on a cluster only)
    p:{T}:h:<group>     stream a history group's kept messages, fields o (offset) and m (payload)
    p:{T}:j:<group>     zset   present channel -> joined_at (the listing order)
    p:{T}:b:<group>     zset   present channel -> time of its last heartbeat (ageing out)
    p:{T}:m:<group>     hash   present channel -> its user id and info, serialised

Every name (group, channel, a process's ``non_local_name``) belongs to one shard,
``shard_index(name)``: a host of ``hosts``, or on a Redis Cluster one of
``CLUSTER_SHARDS`` virtual shards, each a hash tag, so one slot. A group's keys and
every process's inbox on that shard share the tag, so each script (deliver a group
message to every process inbox, number and keep it, add a member and tell its
process) touches one slot: that is what a cluster requires, and on plain hosts the
tag is just part of the name. A process reads its inbox on every shard.

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
import functools
from typing import NamedTuple

from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

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


def parse_seq(seq: bytes) -> tuple[str, int]:
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


def process_of(channel: str) -> str | None:
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


@functools.cache
def shard_tags(shards: int) -> tuple[str, ...]:
    """One hash tag per shard, the k-th in the k-th equal part of the 16384 cluster slots.

    So the shards spread evenly over a cluster's masters (``redis-cli --cluster create``
    gives each master one contiguous range). Derived from ``shards`` alone: every
    process computes the same tags.
    """
    tags = []
    for shard in range(shards):
        low, high = shard * REDIS_CLUSTER_HASH_SLOTS // shards, (shard + 1) * REDIS_CLUSTER_HASH_SLOTS // shards
        attempt = 0
        while not low <= key_slot(f"{shard}.{attempt}".encode()) < high:
            attempt += 1
        tags.append(f"{shard}.{attempt}")
    return tuple(tags)


class Keys:
    """Key names under one prefix, each carrying the hash tag of its shard."""

    def __init__(self, prefix: str, shards: int = 1):
        self.prefix, self.shards = prefix, shards
        self._heads = [f"{prefix}:{{{tag}}}" for tag in shard_tags(shards)]

    def head(self, shard: int) -> str:
        """What every key of ``shard`` starts with: ``prefix:{tag}``."""
        return self._heads[shard]

    def _of(self, name: str) -> str:
        return self._heads[shard_index(name, self.shards)]

    def channel(self, channel: str) -> str:
        return f"{self._of(channel)}:c:{channel}"

    def inbox(self, process: str, shard: int = 0) -> str:
        return f"{self._heads[shard]}:i:{process}"

    def pending(self, process: str, shard: int = 0) -> str:
        return f"{self._heads[shard]}:n:{process}"

    def members(self, group: str) -> str:
        return f"{self._of(group)}:g:{group}"

    def routes(self, group: str) -> str:
        return f"{self._of(group)}:r:{group}"

    def position(self, group: str) -> str:
        return f"{self._of(group)}:e:{group}"

    def history(self, group: str) -> str:
        return f"{self._of(group)}:h:{group}"

    def presence(self, group: str) -> list[str]:
        """The presence keys of ``group``: joined, heartbeats, member data (the order scripts expect)."""
        head = self._of(group)
        return [f"{head}:j:{group}", f"{head}:b:{group}", f"{head}:m:{group}"]

    def topic(self, group: str) -> str:
        """The pub/sub channel of ``group`` (pub/sub layer)."""
        return f"{self._of(group)}:t:{group}"

    def pattern(self, shard: int | None = None) -> str:
        """A SCAN pattern matching every key of this prefix, or of one shard (glob characters escaped)."""
        head = self.prefix + ":" if shard is None else self._heads[shard] + ":"
        return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in head) + "*"


def process_route(process: str) -> str:
    return f"p:{process}"


def channel_route(channel: str, capacity: int) -> str:
    return f"c:{capacity}:{channel}"


def parse_channel_route(route: bytes) -> tuple[str, int]:
    """``b'c:100:name'`` → ``('name', 100)``."""
    _, capacity, channel = route.decode().split(":", 2)
    return channel, int(capacity)

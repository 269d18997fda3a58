"""What every channel layer shares: the contract, name rules, capacities and argument checks.

The contract (Channels' layer API): ``send``, ``receive`` and ``new_channel`` for
channels; ``group_add``, ``group_discard`` and ``group_send`` (the "groups"
extension); ``flush`` ("flush"); ``close``. ``extensions`` lists what a layer
offers beyond send/receive. hubbub's own extensions: ``group_count``, presence
("presence") and history ("history"), with typed results (``PresenceMember``,
``HistoryAnswer``), and "fastlane": ``attach_direct(channel, sink)`` /
``detach_direct(channel, sink)``, a synchronous ``sink(message) -> bool`` offered
each message just before it would wake the channel's receiver waiting in the running
loop (see ``hubbub.layers.inbox``). Consumers check ``"fastlane" in layer.extensions``;
a layer without it has no such methods.
"""

from __future__ import annotations

import fnmatch
import re
import warnings
from collections.abc import Iterable
from typing import Any, TypedDict

from ..exceptions import InvalidGroupName
from ..history import HistoryAnswer

# Channels' limits, kept so names valid there are valid here and vice versa.
MAX_NAME_LENGTH = 100
_GROUP_NAME = re.compile(r"^[a-zA-Z\d\-_.]+\Z")
_CHANNEL_NAME = re.compile(r"^[a-zA-Z\d\-_.]+(![\d\w\-_.]*)?\Z", re.ASCII)


class PresenceMember(TypedDict):
    """A member present in a group: its channel, who it is and since when (``joined_at``: unix time)."""

    channel: str
    user_id: Any
    info: Any
    joined_at: float


class BaseChannelLayer:
    """Base class for layers: validation and per-channel capacity, no transport."""

    MAX_NAME_LENGTH = MAX_NAME_LENGTH
    #: The optional parts of the contract this layer offers: "groups", "flush", "presence", "history", "fastlane".
    extensions: list[str] = []
    #: ``.format("Channel")`` / ``.format("Group")``: the start of every invalid-name TypeError.
    invalid_name_error = (
        "{} name must be a valid unicode string with length < " + str(MAX_NAME_LENGTH) + " containing only ASCII "
        "alphanumerics, hyphens, underscores, or periods."
    )

    def __init__(self, expiry: float = 60, capacity: int = 100, channel_capacity: dict[str, int] | None = None):
        self.expiry = expiry
        self.capacity = capacity
        self.channel_capacity = self.compile_capacities(channel_capacity or {})

    # -- capacity -----------------------------------------------------------------

    def compile_capacities(self, channel_capacity: dict[Any, int]) -> list[tuple[re.Pattern[str], int]]:
        """Turn ``{"glob-or-regex": capacity}`` into a list of ``(compiled regex, capacity)``."""
        result = []
        for pattern, value in channel_capacity.items():
            if hasattr(pattern, "match"):
                result.append((pattern, value))
            else:
                result.append((re.compile(fnmatch.translate(pattern)), value))
        return result

    def get_capacity(self, channel: str) -> int:
        """The capacity of ``channel``: the first matching ``channel_capacity`` pattern, else the default."""
        for pattern, value in self.channel_capacity:
            if pattern.match(channel):
                return value
        return self.capacity

    # -- names --------------------------------------------------------------------

    def match_type_and_length(self, name: Any) -> bool:
        return isinstance(name, str) and len(name) < self.MAX_NAME_LENGTH

    def require_valid_channel_name(self, name: Any, receive: bool = False) -> bool:
        """Raise ``TypeError`` saying what is wrong unless ``name`` is a valid channel name."""
        if not self.match_type_and_length(name) or not _CHANNEL_NAME.match(name):
            raise TypeError(
                self.invalid_name_error.format("Channel")
                + f" ('!' is allowed once, for process-local channels.) Got: {name!r}"
            )
        if receive and "!" in name and not name.endswith("!"):
            raise TypeError(f"Specific channel names in receive() must end at the '!'. Got: {name!r}")
        return True

    def require_valid_group_name(self, name: Any) -> bool:
        """Raise ``TypeError`` saying what is wrong unless ``name`` is a valid group name."""
        if not self.match_type_and_length(name) or not _GROUP_NAME.match(name):
            raise InvalidGroupName(self.invalid_name_error.format("Group") + f" Got: {name!r}", name)
        return True

    def valid_channel_name(self, channel_name: Any, receive: bool = False) -> bool:
        """Deprecated spelling of ``require_valid_channel_name`` (a ``DeprecationWarning``, same result)."""
        warnings.warn(
            "valid_channel_name is deprecated, use require_valid_channel_name instead.",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.require_valid_channel_name(channel_name, receive)

    def valid_group_name(self, group_name: Any) -> bool:
        """Deprecated spelling of ``require_valid_group_name`` (a ``DeprecationWarning``, same result)."""
        warnings.warn(
            "valid_group_name is deprecated, use require_valid_group_name instead.", DeprecationWarning, stacklevel=2
        )
        return self.require_valid_group_name(group_name)

    def valid_channel_names(self, names: Iterable[str], receive: bool = False) -> bool:
        names = list(names)
        if not names:
            raise TypeError("A non-empty list of channel names is required.")
        for name in names:
            self.require_valid_channel_name(name, receive)
        return True

    def non_local_name(self, name: str) -> str:
        """The part of a process-local name the layer routes on: ``'a.b!c'`` → ``'a.b!'``."""
        if "!" in name:
            return name[: name.find("!") + 1]
        return name

    @staticmethod
    def require_valid_message(message: Any) -> None:
        """Raise ``TypeError`` unless ``message`` is a dict with a string ``type``."""
        if not isinstance(message, dict):
            raise TypeError(f"A channel layer message must be a dict, not {type(message).__name__}.")
        kind = message.get("type")
        if not isinstance(kind, str):
            raise TypeError(f"A channel layer message needs a 'type' key holding a string; got {kind!r}.")

    def require_valid_history_position(self, group: Any, epoch: Any, since: Any) -> None:
        """Raise ``TypeError`` unless ``group_history``'s arguments are a group name, a str or None, and an int."""
        self.require_valid_group_name(group)
        if epoch is not None and not isinstance(epoch, str):
            raise TypeError(f"epoch must be a string or None, got {epoch!r}")
        if isinstance(since, bool) or not isinstance(since, int):
            raise TypeError(f"since must be an int offset, got {since!r}")

    # -- the interface layers implement -------------------------------------------

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        """Queue ``message`` (a dict with a str ``type``) on ``channel``.

        Raises ``ChannelFull`` if the channel holds ``capacity`` messages already,
        ``TypeError`` for a bad name or message. An unread message expires after
        ``expiry`` seconds.
        """
        raise NotImplementedError("send() needs to be implemented in a channel layer")

    async def receive(self, channel: str) -> dict[str, Any]:
        """The next message on ``channel``, waiting as long as it takes for one.

        Cancel-safe: a receiver cancelled as a message reached it leaves the message
        first in line for the next receive.
        """
        raise NotImplementedError("receive() needs to be implemented in a channel layer")

    async def new_channel(self, prefix: str = "specific.") -> str:
        """A new process-local channel name (``prefix`` + unique part ending in ``!...``) to receive on."""
        raise NotImplementedError("new_channel() needs to be implemented in a channel layer")

    async def flush(self) -> None:
        """Drop every message and group membership this layer holds (its prefix only, on Redis)."""
        raise NotImplementedError("flush() not implemented (flush extension)")

    async def close(self) -> None:
        """Release the layer's connections; it can be used again afterwards (it reconnects)."""

    async def group_add(self, group: str, channel: str) -> None:
        """Add ``channel`` to ``group`` (again: renews its ``group_expiry``)."""
        raise NotImplementedError("group_add() not implemented (groups extension)")

    async def group_discard(self, group: str, channel: str) -> None:
        """Remove ``channel`` from ``group``; no error if it was not in it."""
        raise NotImplementedError("group_discard() not implemented (groups extension)")

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        """Send ``message`` to every channel in ``group``; members whose channel is full miss it (counted, logged)."""
        raise NotImplementedError("group_send() not implemented (groups extension)")

    # -- hubbub extensions: counts, presence ("presence"), history ("history") -------------

    async def group_count(self, group: str) -> int:
        raise NotImplementedError(f"{type(self).__name__} does not count group members (group_count)")

    async def presence_add(self, group: str, channel: str, *, user_id: Any = None, info: Any = None) -> PresenceMember:
        """Register ``channel`` as present in ``group``; send ``presence.join`` to the group; return the member."""
        raise NotImplementedError(f"{type(self).__name__} has no presence (presence extension)")

    async def presence_remove(self, group: str, channel: str) -> bool:
        """Unregister ``channel`` from ``group``'s presence, sending ``presence.leave``; True if it was there."""
        raise NotImplementedError(f"{type(self).__name__} has no presence (presence extension)")

    async def presence(self, group: str) -> list[PresenceMember]:
        """The members present in ``group``, oldest first."""
        raise NotImplementedError(f"{type(self).__name__} has no presence (presence extension)")

    def configure_group(self, pattern: str, *, history: int | None = None, ttl: float | None = None) -> None:
        """Make groups matching the glob ``pattern`` keep their last ``history`` messages / ``ttl`` seconds."""
        raise NotImplementedError(f"{type(self).__name__} keeps no group history (history extension)")

    async def group_history(self, group: str, *, epoch: str | None = None, since: int = 0) -> HistoryAnswer:
        """What a subscriber at ``(epoch, since)`` missed (see ``HistoryAnswer``)."""
        raise NotImplementedError(f"{type(self).__name__} keeps no group history (history extension)")

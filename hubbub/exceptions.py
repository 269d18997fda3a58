"""Exceptions raised by hubbub; the same names and bases as Channels'."""

from __future__ import annotations


class RequestAborted(Exception):
    """The client went away before its request body was fully read."""


class RequestTimeout(RequestAborted):
    """Reading the request body took too long."""


class InvalidChannelLayerError(ValueError):
    """A channel layer is missing or misconfigured in ``CHANNEL_LAYERS``."""


class InvalidGroupName(TypeError):
    """A channel layer refused a group name (a ``TypeError``, as Channels raises); ``name`` is the name."""

    def __init__(self, message: str, name: object):
        super().__init__(message)
        self.name = name


class AcceptConnection(Exception):
    """Raise from ``connect()`` to accept the WebSocket."""


class DenyConnection(Exception):
    """Raise from ``connect()`` to refuse the WebSocket (HTTP 403 or close 1006)."""


class ChannelFull(Exception):
    """A send would put a channel over its capacity; the message was not queued."""


class MessageTooLarge(Exception):
    """A message is larger than the layer or server accepts."""


class StopConsumer(Exception):
    """Raise from a handler to end the consumer cleanly."""


class InvalidFrame(ValueError):
    """A frame a JSON consumer cannot read; ``code`` is the WebSocket close code to use."""

    def __init__(self, reason: str, code: int):
        super().__init__(reason)
        self.reason = reason
        self.code = code


class ChannelLayerUnavailable(ConnectionError):
    """The channel layer's backing service (Redis) could not take a message: it was not sent.

    Raised by ``send`` and ``group_send`` of the Redis layers while Redis is unreachable or
    does not answer within the layer's ``command_timeout``; the loss is also counted in the
    layer's ``lost`` and in ``hubbub_messages_lost_total``. A ``ConnectionError`` (so an
    ``OSError``), as the failure is the network's, not the message's.
    """

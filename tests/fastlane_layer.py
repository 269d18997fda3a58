"""An in-memory layer offering the "fastlane" extension, for the consumer side's tests.

The layers' own fastlane (``attach_direct``/``detach_direct``) is another branch of issue 13.
Where ``InMemoryChannelLayer`` offers it already, ``FastlaneLayer`` is that layer unchanged;
otherwise this subclass implements the contract (docs of issue 13, section 2) just enough:
a message for a channel whose receiver waits in the running loop, with nothing queued, is
offered to the channel's sink first; taken, the receiver is not woken.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from hubbub.layers import InMemoryChannelLayer

Sink = Any

if "fastlane" in InMemoryChannelLayer.extensions:
    FastlaneLayer: type[InMemoryChannelLayer] = InMemoryChannelLayer
else:

    class _ContractLayer(InMemoryChannelLayer):
        """``InMemoryChannelLayer`` with the fastlane contract on top (test-only)."""

        extensions = [*InMemoryChannelLayer.extensions, "fastlane"]

        def __init__(self, *args: Any, **kwargs: Any):
            super().__init__(*args, **kwargs)
            self.sinks: dict[str, Sink] = {}
            self.sunk = 0  # messages the sinks took

        def attach_direct(self, channel: str, sink: Sink) -> None:
            self.sinks[channel] = sink

        def detach_direct(self, channel: str, sink: Sink) -> None:
            if self.sinks.get(channel) is sink:
                del self.sinks[channel]

        def _deliver(self, channel: str, message: dict[str, Any], expires_at: float, now: float, running: Any) -> None:
            sink = self.sinks.get(channel)
            if sink is not None and running is not None and self._waits_here(channel, running):
                try:
                    taken = sink(message)
                except Exception:
                    logging.getLogger("tests.fastlane").exception("sink raised")
                    taken = False
                if taken:
                    self.sunk += 1
                    return
            super()._deliver(channel, message, expires_at, now, running)

        def _waits_here(self, channel: str, running: asyncio.AbstractEventLoop) -> bool:
            inbox = self._inboxes.get(channel)
            if inbox is None or inbox.queue:
                return False
            waiter = next((w for w in inbox.waiters if not w.done()), None)
            return waiter is not None and waiter.get_loop() is running

    FastlaneLayer = _ContractLayer

"""``manage.py runworker CHANNEL [CHANNEL ...]``: run the background consumers for named channels."""

from __future__ import annotations

import logging
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from hubbub import DEFAULT_CHANNEL_LAYER
from hubbub.layers import InMemoryChannelLayer, get_channel_layer
from hubbub.routing import get_default_application
from hubbub.worker import Worker

logger = logging.getLogger("hubbub.worker")


class Command(BaseCommand):
    help = "Runs the ASGI application's 'channel' consumers for the named channel-layer channels."
    leave_locale_alone = True

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("channels", nargs="+", help="Channel names to listen on (e.g. thumbnails).")
        parser.add_argument(
            "--layer", default=DEFAULT_CHANNEL_LAYER, help="The CHANNEL_LAYERS alias to use (default: %(default)s)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        layer = get_channel_layer(options["layer"])
        if layer is None:
            raise CommandError(f"CHANNEL_LAYERS has no {options['layer']!r} layer; runworker needs one.")
        if isinstance(layer, InMemoryChannelLayer):
            self.stderr.write(
                "Warning: the in-memory channel layer lives in one process, so this worker only sees "
                "messages sent from inside it. Use the Redis layer to reach it from your web server."
            )
        if options["verbosity"] > 0:
            _log_to_console(options["verbosity"])

        channels: list[str] = options["channels"]

        def announce() -> None:  # only once a signal stops the worker cleanly: scripts wait for this line
            self.stdout.write(f"hubbub: worker listening on {', '.join(channels)} (layer {options['layer']!r})")
            self.stdout.flush()

        Worker(application=get_default_application(), channels=channels, channel_layer=layer, on_ready=announce).run()


def _log_to_console(verbosity: int) -> None:
    """Show the worker's own log lines unless the project's LOGGING already routes them."""
    if logger.handlers or logging.getLogger("hubbub").handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbosity > 1 else logging.INFO)

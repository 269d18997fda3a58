"""Settings for the stalled-client and shutdown tests: tests.settings, with a short stall timeout."""

import os

from tests.django_app.settings import *  # noqa: F401,F403

#: Seconds a client may leave data unread before the kernel cuts it off (short, so tests are quick).
HUBBUB_STALLED_CLIENT_TIMEOUT = float(os.environ.get("HUBBUB_TEST_STALL_TIMEOUT", "3"))

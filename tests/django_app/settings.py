"""Settings for the integration tests' server processes (and the live-server tests).

The database file, the channel layer and ``ASGI_APPLICATION`` come from the
environment so each test can start servers that share what it needs.
"""

import os

from tests.settings import *  # noqa: F401,F403

DEBUG = os.environ.get("HUBBUB_TEST_DEBUG", "0") == "1"
ROOT_URLCONF = "tests.django_app.urls"
ASGI_APPLICATION = os.environ.get("HUBBUB_TEST_ASGI", "tests.django_app.asgi.application")
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.environ.get("HUBBUB_TEST_DB", ":memory:")}}
if os.environ.get("HUBBUB_TEST_REDIS"):
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "hubbub.layers.redis.RedisChannelLayer",
            "CONFIG": {"hosts": [os.environ["HUBBUB_TEST_REDIS"]], "prefix": os.environ.get("HUBBUB_TEST_PREFIX", "t")},
        }
    }
LOGIN_REDIRECT_URL = "/"

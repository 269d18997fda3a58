"""Settings of the garbage collection test site: ``HUBBUB_GC`` is ``HUBBUB_TEST_GC`` read as JSON, if set."""

import json
import os

SECRET_KEY = "hubbub-gc-tests"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = ["hubbub"]
MIDDLEWARE: list = []
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
ROOT_URLCONF = "tests.gc_site.asgi"
ASGI_APPLICATION = "tests.gc_site.asgi.application"
CHANNEL_LAYERS = {"default": {"BACKEND": "hubbub.layers.InMemoryChannelLayer"}}
USE_TZ = True
if "HUBBUB_TEST_GC" in os.environ:
    HUBBUB_GC = json.loads(os.environ["HUBBUB_TEST_GC"])

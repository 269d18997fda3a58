"""Settings of the deployment tests' site: no database, a layer from the environment.

``HUBBUB_TEST_REDIS`` (a Redis URL) and ``HUBBUB_TEST_PREFIX`` select the Redis layer,
which the WSGI and ASGI processes of the split deployment must share; without them the
in-memory layer is used.
"""

import os

SECRET_KEY = "hubbub-deploy-tests-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = ["hubbub"]
MIDDLEWARE = []
ROOT_URLCONF = "tests.deploy_site.urls"
ASGI_APPLICATION = "tests.deploy_site.asgi.application"
WSGI_APPLICATION = "tests.deploy_site.wsgi.application"
DATABASES = {}
USE_TZ = True

if os.environ.get("HUBBUB_TEST_REDIS"):
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "hubbub.layers.redis.RedisChannelLayer",
            "CONFIG": {"hosts": [os.environ["HUBBUB_TEST_REDIS"]], "prefix": os.environ.get("HUBBUB_TEST_PREFIX", "t")},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "hubbub.layers.InMemoryChannelLayer"}}

# A failing request logs its traceback to the server's output (DEBUG is off, as in production).
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django.request": {"handlers": ["console"], "level": "ERROR"}},
}

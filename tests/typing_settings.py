"""Settings for mypy's Django plugin ([tool.django-stubs] in pyproject.toml): the apps hubbub's types refer to.

The plugin types each setting from its value here, so the settings hubbub reads are annotated as loosely as
a project may write them.
"""

from typing import Any

SECRET_KEY = "hubbub-typing"
INSTALLED_APPS = [
    "hubbub",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
]
DATABASES: dict[str, dict[str, Any]] = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
CHANNEL_LAYERS: dict[str, dict[str, Any]] = {"default": {"BACKEND": "hubbub.layers.InMemoryChannelLayer"}}
ASGI_APPLICATION: str = "tests.asgi_app.application"
USE_TZ = True

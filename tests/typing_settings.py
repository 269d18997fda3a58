"""Settings for mypy's Django plugin ([tool.django-stubs] in pyproject.toml): the apps hubbub's types refer to."""

SECRET_KEY = "hubbub-typing"
INSTALLED_APPS = [
    "hubbub",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
CHANNEL_LAYERS = {"default": {"BACKEND": "hubbub.layers.InMemoryChannelLayer"}}
USE_TZ = True

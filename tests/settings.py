"""Settings for hubbub's own test suite."""

SECRET_KEY = "hubbub-tests"
DEBUG = False
ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]
INSTALLED_APPS = [
    "hubbub",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.staticfiles",
    "tests.django_app",  # models, templates and consumers for the Django integration tests
    "tests.broadcast_app",  # a model whose changes tests/test_broadcast.py announces
]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
CHANNEL_LAYERS = {"default": {"BACKEND": "hubbub.layers.InMemoryChannelLayer"}}
ASGI_APPLICATION = "tests.asgi_app.application"
ROOT_URLCONF = "tests.urls"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
MIDDLEWARE = [  # for tests/django_app's views (Django's login view needs sessions, auth and CSRF)
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
STATIC_URL = "static/"
TEMPLATES = [{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True, "OPTIONS": {}}]


def _postgres_alias() -> dict:
    """The PostgreSQL on 127.0.0.1:5432 (database ``test``, user postgres) when it answers and psycopg is installed."""
    import os
    import socket

    try:
        import psycopg  # noqa: F401

        with socket.create_connection(("127.0.0.1", 5432), timeout=0.3):
            pass
    except (ImportError, OSError):
        return {}
    return {
        "postgres": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": "test",
            "USER": "postgres",
            "HOST": "127.0.0.1",
            "PORT": 5432,
            # One test database per run: several suites may run at once on this machine.
            "TEST": {"NAME": f"test_hubbub_{os.getpid()}"},
        }
    }


DATABASES.update(_postgres_alias())  # tests/test_db.py uses it, or skips saying why
# Logins in the tests need no slow hashing (Django's own advice for test settings).
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

"""Settings for the hubbub example site (development only: DEBUG on, SQLite, in-memory layer)."""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "hubbub-demo-not-secret")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]

INSTALLED_APPS = [
    "hubbub",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "chat",
    "echo",
    "dashboard",
    "table",
    "api",
    "notifications",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

ROOT_URLCONF = "demo.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "demo.context.limits",
            ],
        },
    },
]

ASGI_APPLICATION = "demo.asgi.application"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("DEMO_DB", str(BASE_DIR / "db.sqlite3")),
    }
}

if os.environ.get("DEMO_REDIS") or os.environ.get("DEMO_REDIS_CLUSTER"):
    # DEMO_REDIS_CLUSTER: comma-separated seed URLs of a Redis Cluster, instead of one Redis.
    _where = (
        {"cluster": os.environ["DEMO_REDIS_CLUSTER"].split(",")}
        if os.environ.get("DEMO_REDIS_CLUSTER")
        else {"hosts": [os.environ["DEMO_REDIS"]]}
    )
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "hubbub.layers.redis.RedisChannelLayer",
            "CONFIG": {**_where, "prefix": os.environ.get("DEMO_REDIS_PREFIX", "demo")},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "hubbub.layers.InMemoryChannelLayer"}}

#: The dashboard's sockets must present this token (header ``token`` or ``?token=``).
DASHBOARD_TOKEN = os.environ.get("DEMO_DASHBOARD_TOKEN", "demo-dashboard-token")

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "notifications"
LOGOUT_REDIRECT_URL = "index"

STATIC_URL = "static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True

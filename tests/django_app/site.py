"""Server processes for the Django integration tests: a migrated database file, runserver, uvicorn."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.servers import ROOT, Process, free_port, uvicorn

SETTINGS = "tests.django_app.settings"
PASSWORD = "correct horse battery staple"

_SETUP = """
import django
django.setup()
from django.core.management import call_command
from django.contrib.auth import get_user_model
call_command("migrate", run_syncdb=True, verbosity=0)  # tests.django_app has no migrations
get_user_model().objects.create_user("alice", password={password!r})
"""


def env_for(db: Path, **extra: str) -> dict[str, str]:
    """Environment for a process of the test site using database file ``db``."""
    return {"DJANGO_SETTINGS_MODULE": SETTINGS, "HUBBUB_TEST_DB": str(db), "PYTHONPATH": str(ROOT), **extra}


def migrated_database(directory: Path) -> Path:
    """A new SQLite file with the test site's tables and the user alice."""
    db = directory / "site.sqlite3"
    subprocess.run(
        [sys.executable, "-c", _SETUP.format(password=PASSWORD)],
        cwd=ROOT,
        env={**os.environ, **env_for(db)},
        check=True,
        timeout=60,
    )
    return db


def runserver(db: Path, *args: str, port: int | None = None, env: dict[str, str] | None = None) -> Process:
    """``django-admin runserver 127.0.0.1:PORT`` for the test site (``--noreload`` unless ``args`` say otherwise)."""
    port = port or free_port()
    argv: list[str] = [sys.executable, "-m", "django", "runserver", f"127.0.0.1:{port}", *(args or ("--noreload",))]
    process = Process(argv, ROOT, {**env_for(db), **(env or {})}, port)
    process.url = f"http://127.0.0.1:{port}"  # type: ignore[attr-defined]
    process.ws_url = f"ws://127.0.0.1:{port}"  # type: ignore[attr-defined]
    return process


def site_uvicorn(db: Path, env: dict[str, str] | None = None) -> Process:
    """uvicorn serving the test site's ASGI application."""
    return uvicorn("tests.django_app.asgi:application", cwd=ROOT, env={**env_for(db), **(env or {})})

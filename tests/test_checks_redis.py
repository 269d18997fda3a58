"""``manage.py check --deploy`` tries every configured Redis layer, in a real project directory."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.servers import ROOT, free_port, redis_server

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed"),
]

MANAGE_PY = """\
import os, sys
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "site_settings")
from django.core.management import execute_from_command_line
execute_from_command_line(sys.argv)
"""

SETTINGS = """\
SECRET_KEY = "a-long-enough-secret-key-for-the-deployment-checks-0123456789abcdef"
DEBUG = False
ALLOWED_HOSTS = ["example.com"]
INSTALLED_APPS = ["hubbub.apps.HubbubConfig"]
ASGI_APPLICATION = "tests.asgi_app.application"
CHANNEL_LAYERS = {layers!r}
"""


def check(project: Path, layers: dict[str, dict], *args: str) -> subprocess.CompletedProcess:
    (project / "manage.py").write_text(MANAGE_PY)
    (project / "site_settings.py").write_text(SETTINGS.format(layers=layers))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(project), str(ROOT)])}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return subprocess.run(
        [sys.executable, "manage.py", "check", *args], cwd=project, env=env, capture_output=True, text=True, timeout=60
    )


def redis_layer(url: str, backend: str = "hubbub.layers.redis.RedisChannelLayer") -> dict:
    return {"BACKEND": backend, "CONFIG": {"hosts": [url]}}


def test_unreachable_redis_is_a_deployment_error_naming_alias_and_host_without_password(tmp_path):
    """One layer answers, one (with a password in its URL) has nothing listening: only that one is reported."""
    dead_port = free_port()
    with redis_server() as live:
        layers = {
            "default": redis_layer(live.url),
            "events": redis_layer(
                f"redis://:s3cret-pass@127.0.0.1:{dead_port}/0", "channels_redis.pubsub.RedisPubSubChannelLayer"
            ),
            "local": {"BACKEND": "hubbub.layers.InMemoryChannelLayer"},
        }
        started = time.monotonic()
        result = check(tmp_path, layers, "--deploy")
        took = time.monotonic() - started
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    errors = [line for line in output.splitlines() if "hubbub.E010" in line]
    assert len(errors) == 1, output
    assert "CHANNEL_LAYERS['events']" in errors[0] and f"127.0.0.1:{dead_port}" in errors[0]
    assert "s3cret-pass" not in output
    assert "'default'" not in "\n".join(errors)
    assert took < 30  # a short PING timeout per server, not redis-py's default wait


def test_reachable_redis_passes_and_plain_check_does_not_try_it(tmp_path):
    """With Redis up, --deploy reports nothing of hubbub's; a plain ``check`` never connects at all."""
    with redis_server() as live:
        result = check(tmp_path, {"default": redis_layer(live.url)}, "--deploy")
        assert "hubbub.E010" not in result.stdout + result.stderr, result.stdout + result.stderr
    result = check(tmp_path, {"default": redis_layer(f"redis://127.0.0.1:{free_port()}/0")})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "hubbub.E010" not in result.stdout + result.stderr


def test_a_silent_redis_is_reported_within_the_check_timeout(tmp_path):
    """A listener that accepts and never answers (a stopped Redis) is reported, not waited on forever."""
    import socket

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        started = time.monotonic()
        result = check(tmp_path, {"default": redis_layer(f"redis://127.0.0.1:{port}/0")}, "--deploy")
        took = time.monotonic() - started
    output = result.stdout + result.stderr
    assert result.returncode == 1 and "hubbub.E010" in output and "did not answer" in output, output
    assert took < 30

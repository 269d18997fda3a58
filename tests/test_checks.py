"""hubbub's system checks, as a user meets them: ``manage.py check`` in a real project.

Each test writes a small project (settings, asgi, urls, manage.py) to a temporary
directory and runs ``manage.py check`` in a subprocess with ``"hubbub"`` in
``INSTALLED_APPS``, the way every document writes it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.servers import ROOT

DEFAULT_APPS = ["hubbub", "django.contrib.contenttypes", "django.contrib.auth", "django.contrib.staticfiles"]


def write_project(
    directory: Path,
    *,
    apps: list[str] | None = None,
    asgi_application: str | None = "proj.asgi.application",
    layers: str = "{'default': {'BACKEND': 'hubbub.layers.InMemoryChannelLayer'}}",
    preamble: str = "",
) -> Path:
    """A minimal Django project using hubbub, written as a user would."""
    package = directory / "proj"
    package.mkdir()
    (package / "__init__.py").write_text("")
    asgi_line = f"ASGI_APPLICATION = {asgi_application!r}" if asgi_application else ""
    (package / "settings.py").write_text(
        preamble
        + "\n"
        + textwrap.dedent(f"""\
        SECRET_KEY = "checks-test"
        DEBUG = True
        INSTALLED_APPS = {apps or DEFAULT_APPS!r}
        ROOT_URLCONF = "proj.urls"
        DATABASES = {{"default": {{"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}}}
        STATIC_URL = "static/"
        DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
        {asgi_line}
        CHANNEL_LAYERS = {layers}
        """)
    )
    (package / "urls.py").write_text("urlpatterns = []\n")
    (package / "asgi.py").write_text(
        textwrap.dedent("""\
        import os

        from django.core.asgi import get_asgi_application

        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "proj.settings")
        django_asgi_app = get_asgi_application()

        from hubbub.routing import ProtocolTypeRouter, URLRouter

        application = ProtocolTypeRouter({"http": django_asgi_app, "websocket": URLRouter([])})
        """)
    )
    (directory / "manage.py").write_text(
        textwrap.dedent("""\
        import os
        import sys

        if __name__ == "__main__":
            os.environ.setdefault("DJANGO_SETTINGS_MODULE", "proj.settings")
            from django.core.management import execute_from_command_line

            execute_from_command_line(sys.argv)
        """)
    )
    return directory


def manage_check(directory: Path) -> subprocess.CompletedProcess:
    """``python manage.py check`` in ``directory``, with this checkout's hubbub first on the path."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(directory)])}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=directory, env=env, capture_output=True, text=True, timeout=120
    )


def issue_lines(result: subprocess.CompletedProcess, check_id: str) -> list[str]:
    """The lines of the check output that report ``check_id``, with the hint line after each."""
    lines = (result.stdout + result.stderr).splitlines()
    return [" ".join(lines[i : i + 2]) for i, line in enumerate(lines) if f"({check_id})" in line]


def test_a_correct_project_passes_the_checks(tmp_path):
    """With "hubbub" in INSTALLED_APPS and a working configuration, check reports no issue."""
    result = manage_check(write_project(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout
    assert "hubbub." not in result.stderr


def test_missing_asgi_application_is_reported(tmp_path):
    """No ASGI_APPLICATION: warning hubbub.W001 says runserver cannot serve WebSockets."""
    result = manage_check(write_project(tmp_path, asgi_application=None))
    (line,) = issue_lines(result, "hubbub.W001")
    assert "ASGI_APPLICATION is not set, so runserver cannot serve WebSockets." in line
    assert result.returncode == 0  # a warning, not an error


@pytest.mark.parametrize(
    "value, says",
    [
        ("proj.asgii.application", "cannot import module 'proj.asgii'"),
        ("proj.asgi.app", "module 'proj.asgi' has no 'app'"),
    ],
)
def test_wrong_asgi_application_is_an_error(tmp_path, value, says):
    """An ASGI_APPLICATION that does not resolve: error hubbub.E001 names what is missing."""
    result = manage_check(write_project(tmp_path, asgi_application=value))
    (line,) = issue_lines(result, "hubbub.E001")
    assert says in line and "Check the dotted path in ASGI_APPLICATION." in line
    assert result.returncode == 1


def test_layer_class_typo_names_the_class_and_suggests_the_right_one(tmp_path):
    """A typo in the class of a Redis layer path: "no class ... did you mean", no install hint."""
    layers = "{'default': {'BACKEND': 'hubbub.layers.redis.RedisChanelLayer'}}"
    result = manage_check(write_project(tmp_path, layers=layers))
    (line,) = issue_lines(result, "hubbub.E004")
    assert (
        "CHANNEL_LAYERS['default'] BACKEND 'hubbub.layers.redis.RedisChanelLayer': no class 'RedisChanelLayer' "
        "in module 'hubbub.layers.redis'; did you mean 'RedisChannelLayer'?"
    ) in line
    assert "pip install" not in line
    assert result.returncode == 1


def test_in_memory_layer_typo_suggests_the_right_class(tmp_path):
    """A typo in the in-memory layer's class gets the same kind of answer."""
    layers = "{'default': {'BACKEND': 'hubbub.layers.InMemoryLayer'}}"
    (line,) = issue_lines(manage_check(write_project(tmp_path, layers=layers)), "hubbub.E004")
    assert "no class 'InMemoryLayer' in module 'hubbub.layers'; did you mean 'InMemoryChannelLayer'?" in line


def test_module_typo_names_the_module_and_suggests_one(tmp_path):
    """A typo in the module part: "cannot import module", the closest module of hubbub's layers."""
    layers = "{'default': {'BACKEND': 'hubbub.layer.redis.RedisChannelLayer'}}"
    (line,) = issue_lines(manage_check(write_project(tmp_path, layers=layers)), "hubbub.E004")
    assert "cannot import module 'hubbub.layer.redis'" in line
    assert "Did you mean module 'hubbub.layers.redis'?" in line
    assert "pip install" not in line


def test_channels_redis_typo_is_explained_by_hubbubs_mapping(tmp_path):
    """A typo in a channels_redis path: the mapped names, not "install channels_redis"."""
    layers = "{'default': {'BACKEND': 'channels_redis.core.RedisChanelLayer'}}"
    (line,) = issue_lines(manage_check(write_project(tmp_path, layers=layers)), "hubbub.E004")
    assert "not one of the Channels paths hubbub maps to its own layers" in line
    assert "did you mean 'channels_redis.core.RedisChannelLayer'?" in line
    assert "No module named" not in line and "pip install" not in line


def test_mapped_channels_paths_pass(tmp_path):
    """The Channels paths hubbub maps pass the check without channels or channels_redis."""
    layers = (
        "{'default': {'BACKEND': 'channels.layers.InMemoryChannelLayer'},"
        " 'redis': {'BACKEND': 'channels_redis.core.RedisChannelLayer'}}"
    )
    result = manage_check(write_project(tmp_path, layers=layers))
    assert result.returncode == 0 and "hubbub.E004" not in result.stderr, result.stderr


def test_missing_redis_extra_gets_the_install_hint(tmp_path):
    """Only when redis really cannot be imported does the check say to install the extra."""
    layers = "{'default': {'BACKEND': 'hubbub.layers.redis.RedisChannelLayer'}}"
    blocked = "import sys\nsys.modules['redis'] = None  # as if the redis extra were not installed"
    (line,) = issue_lines(manage_check(write_project(tmp_path, layers=layers, preamble=blocked)), "hubbub.E004")
    assert "cannot be imported" in line and "redis" in line
    assert "pip install 'hubbub[redis]'" in line


@pytest.mark.parametrize("before", ["django.contrib.staticfiles", "daphne"])
def test_hubbub_after_an_app_with_its_own_runserver_is_reported(tmp_path, before):
    """ "hubbub" after staticfiles or daphne: warning hubbub.W002 says runserver is not hubbub's."""
    pytest.importorskip(before.split(".")[0])
    apps = ["django.contrib.contenttypes", "django.contrib.auth", before, "hubbub"]
    if before != "django.contrib.staticfiles":
        apps.append("django.contrib.staticfiles")
    (line,) = issue_lines(manage_check(write_project(tmp_path, apps=apps)), "hubbub.W002")
    assert f"'hubbub' comes after '{before}' in INSTALLED_APPS" in line
    assert "Move 'hubbub' above them in INSTALLED_APPS." in line


def test_the_channels_config_name_still_works(tmp_path):
    """ "hubbub.apps.ChannelsConfig" in INSTALLED_APPS loads hubbub and runs its checks too."""
    apps = ["hubbub.apps.ChannelsConfig", "django.contrib.contenttypes", "django.contrib.auth"]
    result = manage_check(write_project(tmp_path, apps=apps, asgi_application=None))
    assert len(issue_lines(result, "hubbub.W001")) == 1, result.stderr

"""`make demo` from the user's side: what it installs, the variables it reads, and that the README documents them.

The Makefile is run with ``make -n`` (print, do not run) in a copy, so nothing is installed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.servers import EXAMPLES, ROOT

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")

#: Variables the Makefile defines for itself (``:=``); the rest are the user's to set.
INTERNAL = re.compile(r"^([A-Z_0-9]+)\s*:=", re.M)


def make_dry_run(tmp_path: Path, *args: str) -> str:
    """The commands ``make -n`` prints in a fresh copy of the Makefile and pyproject.toml."""
    for name in ("Makefile", "pyproject.toml", "package.json", "package-lock.json"):
        shutil.copy(ROOT / name, tmp_path / name)
    env = {key: value for key, value in os.environ.items() if key not in {"REDIS", "HOST", "PORT", "PORT2"}}
    result = subprocess.run(["make", "-n", *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def install_lines(output: str) -> list:
    return [line for line in output.splitlines() if "pip install" in line and "--upgrade pip" not in line]


def test_demo_installs_hubbub_without_the_test_extra(tmp_path):
    """`make demo` installs hubbub alone; REDIS=1 adds only the redis extra."""
    assert install_lines(make_dry_run(tmp_path, "demo")) == [".venv/bin/python -m pip install -q -e '.'"]
    assert install_lines(make_dry_run(tmp_path, "demo", "REDIS=1")) == [
        ".venv/bin/python -m pip install -q -e '.[redis]'"
    ]


def test_make_test_still_installs_the_test_extra(tmp_path):
    """`make test` keeps installing the test tools and the redis extra."""
    first, *more = install_lines(make_dry_run(tmp_path, "test"))
    assert first == ".venv/bin/python -m pip install -q -e '.[test,redis]'"
    assert all("--no-deps" in line for line in more), "only add-ons installed without their `channels` dependency"


def test_demo_variables_reach_the_servers(tmp_path):
    """HOST, PORT, PORT2, REDIS_URL and REDIS_PREFIX end up in the commands that start the demo."""
    output = make_dry_run(
        tmp_path,
        "demo",
        "REDIS=1",
        "HOST=0.0.0.0",
        "PORT=9000",
        "PORT2=9001",
        "REDIS_URL=redis://127.0.0.1:6390/2",
        "REDIS_PREFIX=mine",
    )
    assert "runserver --noreload 0.0.0.0:9000" in output and "runserver --noreload 0.0.0.0:9001" in output
    assert "export DEMO_REDIS='redis://127.0.0.1:6390/2' DEMO_REDIS_PREFIX='mine'" in output
    assert "runserver 127.0.0.1:8000" in make_dry_run(tmp_path, "demo")


def test_example_settings_use_the_redis_prefix_variable():
    """DEMO_REDIS_PREFIX (what REDIS_PREFIX sets) becomes the prefix of the example site's Redis layer."""
    code = (
        "import django; django.setup(); from hubbub.layers import get_channel_layer; print(get_channel_layer().prefix)"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "demo.settings",
        "DEMO_REDIS": "redis://127.0.0.1:6379/0",
        "DEMO_REDIS_PREFIX": "mine",
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(EXAMPLES)]),
    }
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=EXAMPLES, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == "mine", result.stderr


def demo_variables() -> dict[str, str]:
    """The variables the demo target reads from the user, with their Makefile defaults ('' for none)."""
    makefile = (ROOT / "Makefile").read_text()
    demo_part = makefile.split("demo: ", 1)[1].split("\ntest:", 1)[0]
    referenced: set[str] = set(re.findall(r"\$\(([A-Z_0-9]+)\)", makefile.split("\ntest:", 1)[0]))
    referenced |= set(re.findall(r"ifeq \(\$\(([A-Z_0-9]+)\)", demo_part))
    defaults = dict(re.findall(r"^([A-Z_0-9]+)\s*\?=\s*(.*)$", makefile, re.M))
    user = referenced - set(INTERNAL.findall(makefile))
    return {name: defaults.get(name, "") for name in sorted(user)}


def readme_demo_table() -> dict[str, str]:
    """The README's table of `make demo` variables: name -> default column."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("It reads these variables", 1)[1].split("\n\n", 2)[1]
    rows = re.findall(r"^\| `([A-Z_0-9]+)` \| ([^|]*) \|", section, re.M)
    return {name: default.strip() for name, default in rows}


def test_readme_documents_every_variable_make_demo_reads():
    """Each variable the demo target reads is in the README's table, with the Makefile's default."""
    variables = demo_variables()
    assert {"HOST", "PORT", "PORT2", "REDIS", "REDIS_URL", "REDIS_PREFIX"} <= set(variables)
    table = readme_demo_table()
    assert set(variables) <= set(table), f"not in the README: {set(variables) - set(table)}"
    for name, default in variables.items():
        assert table[name] == (f"`{default}`" if default else "unset"), name

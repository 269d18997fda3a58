"""hubbub.js, the browser client: ESLint finds nothing and node's test runner passes tests/js/.

Both run as subprocesses, as ``npm run lint`` and ``npm test`` would run them (package.json
names the linted paths once; this file reads them from there). They need ``node`` and the
ESLint that ``make test`` installs with ``npm ci`` from package-lock.json; where either is
missing the tests skip loudly, and under ``CI=true`` they fail instead.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ESLINT = ROOT / "node_modules" / "eslint" / "bin" / "eslint.js"
IN_CI = os.environ.get("CI", "").lower() == "true"


def missing(what: str) -> None:
    """Skip the test for want of ``what``; under CI=true, where make test provides it, fail."""
    message = f"{what}: the hubbub.js checks cannot run"
    if IN_CI:
        pytest.fail(f"CI=true: {message}")
    pytest.skip(message)


def node() -> str:
    path = shutil.which("node")
    if path is None:
        missing("node is not installed (Debian: apt-get install nodejs npm)")
    return str(path)


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)


def test_eslint_finds_nothing_in_the_client_and_its_tests() -> None:
    """``npm run lint``'s command passes: eslint.config.js's rules, no warning allowed."""
    program = node()
    if not ESLINT.exists():
        missing("ESLint is not in node_modules (make test installs it: npm ci --no-audit --no-fund)")
    lint = json.loads((ROOT / "package.json").read_text())["scripts"]["lint"].split()
    assert lint[0] == "eslint" and "--max-warnings" in lint, lint
    result = run(program, str(ESLINT), *lint[1:])
    assert result.returncode == 0, result.stdout + result.stderr


def test_node_runs_the_client_unit_tests_and_all_pass() -> None:
    """``node --test`` over tests/js/*.test.js: every test passes, and there are tests to pass."""
    program = node()
    files = sorted(str(path.relative_to(ROOT)) for path in (ROOT / "tests" / "js").glob("*.test.js"))
    assert files, "no tests/js/*.test.js found"
    result = run(program, "--test", "--test-reporter=tap", *files)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    counts = dict(re.findall(r"^# (pass|fail|cancelled) (\d+)$", result.stdout, re.MULTILINE))
    assert counts.get("fail") == "0" and counts.get("cancelled") == "0", output
    assert int(counts.get("pass", "0")) > 0, output

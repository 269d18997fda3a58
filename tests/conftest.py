"""Fixtures shared by the whole suite: a fresh channel layer per test, Redis discovery."""

from __future__ import annotations

import functools
import os
import socket
import time
import uuid

import pytest
from asgiref.sync import SyncToAsync
from django.db import connections

from hubbub.layers import InMemoryChannelLayer, channel_layers

IN_CI = os.environ.get("CI", "").lower() == "true"

#: Where group messages reach a forward (hubbub.fastlane; PubSubConsumer's handlers are forwards):
#: test modules, or single tests as ``module::name``. They get the ``both_paths`` marker, and
#: ``make test`` runs them a second time with ``HUBBUB_FASTLANE=0`` (``pytest -m both_paths``), so
#: they pass on the fastlane and on the normal path. tests/test_fastlane.py and
#: tests/e2e/test_fastlane.py run both paths themselves, so they are not here.
BOTH_PATHS = (
    "tests/test_example_consumers.py",  # the demo's chat room (examples/chat)
    "tests/test_hubbub_events.py",  # PubSubConsumer beside the tutorial's chat
    "tests/test_pubsub.py",
    "tests/test_redis_outages.py::test_a_server_on_a_stopped_redis_answers_handshakes_views_and_metrics_within_a_bound",
    "tests/test_status_command.py",  # tests/e2e/backpressure_app.py
    "tests/e2e/test_backpressure.py",  # tests/e2e/backpressure_app.py
    "tests/e2e/test_core.py",  # tests/e2e/core_app.py
    "tests/e2e/test_example_site.py",  # the demo's chat rooms and tables
    "tests/e2e/test_granian.py",  # tests/e2e/granian_app.py
    "tests/e2e/test_hostile_input.py",  # tests/e2e/hostile_app.py, PubSubConsumer
    "tests/e2e/test_pubsub_browser.py",
    "tests/e2e/test_redis_multiprocess.py",  # the demo's chat rooms on Redis
    "tests/e2e/test_shared_groups.py",  # PubSubConsumer
    # tests/e2e/backpressure_app.py: one shutdown with a stuck outbox (the others add a minute, not a path)
    "tests/e2e/test_shutdown.py::test_documented_uvicorn_command_exits_within_its_graceful_timeout_clients_get_1012",
    "tests/e2e/test_split_deployment.py",  # tests/deploy_site (push from a view)
    "tests/e2e/test_stalled_clients.py",  # tests/e2e/backpressure_app.py
)
REDIS_HOST, REDIS_PORT = "127.0.0.1", int(os.environ.get("HUBBUB_TEST_REDIS_PORT", "6379"))
_redis_skips: list = []


@functools.cache
def redis_available() -> bool:
    """Whether the shared Redis answers PING; patient, since a loaded machine answers slowly."""
    for _ in range(3):
        try:
            with socket.create_connection((REDIS_HOST, REDIS_PORT), timeout=3) as sock:
                sock.settimeout(3)
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return True
        except OSError:
            pass
        time.sleep(0.5)
    return False


def pytest_configure(config):
    config.addinivalue_line("markers", "both_paths: run again with HUBBUB_FASTLANE=0 by make test (BOTH_PATHS)")


def pytest_collection_modifyitems(config, items):
    """Mark the tests of ``BOTH_PATHS``."""
    for item in items:
        module, _, name = item.nodeid.partition("::")
        if module in BOTH_PATHS or f"{module}::{name.partition('[')[0]}" in BOTH_PATHS:
            item.add_marker(pytest.mark.both_paths)


@pytest.fixture(autouse=True)
def fresh_layer():
    """Each test gets a new in-memory default layer, so no state leaks between tests."""
    layer = InMemoryChannelLayer()
    old = channel_layers.set("default", layer)
    yield layer
    if old is None:
        channel_layers.backends.pop("default", None)
    else:
        channel_layers.set("default", old)


@pytest.fixture(autouse=True)
def close_sync_thread_connections():
    """Close DB connections a test left in asgiref's shared sync thread.

    ``database_sync_to_async`` (and so every SyncConsumer) runs in that one thread and
    checks its connections around each call; a connection opened there by a
    ``django_db`` test would otherwise be touched by the next test, which may not be
    allowed database access.
    """
    yield
    SyncToAsync.single_thread_executor.submit(_forget_connections).result(timeout=10)


def _forget_connections() -> None:
    for conn in connections.all(initialized_only=True):
        conn.close()  # a no-op for in-memory SQLite: forgetting the wrapper releases it
        del connections[conn.alias]


@pytest.fixture
def redis_url(request) -> str:
    """The shared Redis on 127.0.0.1:6379. Skips when absent, except under CI=true where it fails."""
    if not redis_available():
        if IN_CI:
            pytest.fail(f"Redis is required under CI=true but {REDIS_HOST}:{REDIS_PORT} does not answer PING")
        pytest.skip(f"no Redis on {REDIS_HOST}:{REDIS_PORT}")
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/0"


@pytest.fixture(params=["host", "cluster"])
def redis_target(request):
    """Where a Redis layer test runs: the shared Redis (its URL) or the session's cluster (its seed URLs)."""
    if request.param == "host":
        return request.getfixturevalue("redis_url")
    return request.getfixturevalue("redis_cluster_urls")


def redis_config(target) -> dict:
    """The layer CONFIG entry for a ``redis_target``: ``hosts`` for one URL, ``cluster`` for seed URLs."""
    return {"cluster": list(target)} if isinstance(target, list) else {"hosts": [target]}


@pytest.fixture
def redis_prefix() -> str:
    """A key prefix no other test (or process) uses; never flush the shared Redis."""
    return "hubbubtest" + uuid.uuid4().hex[:10]


def pytest_runtest_logreport(report):
    """Collect every skip that names Redis, whichever test or fixture decided it."""
    if report.skipped and isinstance(report.longrepr, tuple):
        reason = str(report.longrepr[2])
        if "redis" in reason.lower():
            _redis_skips.append((report.nodeid, reason))


def _required_redis_skips() -> list:
    # Sentinel is optional where redis-sentinel cannot start; everything else Redis is required in CI.
    return [(node, reason) for node, reason in _redis_skips if "sentinel" not in reason.lower()]


def pytest_sessionfinish(session, exitstatus):
    if IN_CI and _required_redis_skips() and session.exitstatus == 0:
        session.exitstatus = 1


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not _redis_skips:
        return
    terminalreporter.write_sep(
        "!",
        f"REDIS NOT AVAILABLE: {len(_redis_skips)} Redis test(s) SKIPPED "
        "(start redis-server on 127.0.0.1:6379 to run them)",
        red=True,
        bold=True,
    )
    for node, reason in _redis_skips[:10]:
        terminalreporter.write_line(f"  {node}: {reason}")
    if IN_CI and _required_redis_skips():
        terminalreporter.write_sep("!", "CI=true: Redis is required, so these skips FAIL the run", red=True, bold=True)


@pytest.fixture(scope="session")
def redis_cluster_urls():
    """Seed URLs of one private Redis Cluster (3 masters, 3 replicas) shared by the session.

    Skips loudly where redis-server/redis-cli are missing (fails under CI=true). Tests
    that kill or fail over nodes start their own with ``tests.redis_cluster.redis_cluster()``.
    """
    from .redis_cluster import redis_cluster

    with redis_cluster() as cluster:
        yield cluster.urls

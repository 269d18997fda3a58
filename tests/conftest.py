"""Fixtures shared by the whole suite: a fresh channel layer per test, Redis discovery."""

from __future__ import annotations

import os
import socket
import uuid

import pytest

from hubbub.layers import InMemoryChannelLayer, channel_layers

IN_CI = os.environ.get("CI", "").lower() == "true"
REDIS_HOST, REDIS_PORT = "127.0.0.1", int(os.environ.get("HUBBUB_TEST_REDIS_PORT", "6379"))
_redis_skips: list = []


def redis_available() -> bool:
    try:
        with socket.create_connection((REDIS_HOST, REDIS_PORT), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


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
    from asgiref.sync import SyncToAsync
    from django.db import connections

    SyncToAsync.single_thread_executor.submit(connections.close_all).result(timeout=10)


@pytest.fixture
def redis_url(request) -> str:
    """The shared Redis on 127.0.0.1:6379. Skips when absent, except under CI=true where it fails."""
    if not redis_available():
        if IN_CI:
            pytest.fail(f"Redis is required under CI=true but {REDIS_HOST}:{REDIS_PORT} does not answer PING")
        _redis_skips.append(request.node.nodeid)
        pytest.skip(f"no Redis on {REDIS_HOST}:{REDIS_PORT}")
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/0"


@pytest.fixture
def redis_prefix() -> str:
    """A key prefix no other test (or process) uses; never flush the shared Redis."""
    return "hubbubtest" + uuid.uuid4().hex[:10]


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if _redis_skips:
        terminalreporter.write_sep(
            "!", f"REDIS NOT AVAILABLE: {len(_redis_skips)} Redis test(s) SKIPPED (start redis-server on 6379 to run them)",
            red=True, bold=True,
        )

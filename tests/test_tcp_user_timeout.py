"""hubbub.tcp_user_timeout on real sockets of this process: what it sets, where, and what it refuses."""

from __future__ import annotations

import logging
import socket
import sys

import pytest
from django.test import override_settings

from hubbub import tcp_user_timeout

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="TCP_USER_TIMEOUT is Linux's")


def user_timeout(sock: socket.socket) -> int:
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT)


@pytest.fixture
def fresh(monkeypatch):
    """A process in which install() has not run yet."""
    monkeypatch.setattr(tcp_user_timeout, "_installed", False)
    monkeypatch.setattr(tcp_user_timeout, "installed", None)


@pytest.fixture
def server_and_client():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    client = socket.create_connection(listener.getsockname())
    accepted, _ = listener.accept()
    other = socket.socket()  # a listening socket's neighbour that is no server's: left alone
    other.bind(("127.0.0.1", 0))
    yield listener, accepted, client, other
    for sock in (listener, accepted, client, other):
        sock.close()


@override_settings(HUBBUB_STALLED_CLIENT_TIMEOUT=7)
def test_install_sets_the_timeout_on_listening_sockets_and_their_accepted_connections(fresh, server_and_client):
    listener, accepted, client, other = server_and_client
    tcp_user_timeout.install()
    assert tcp_user_timeout.installed == 7.0
    assert user_timeout(listener) == 7000
    assert user_timeout(accepted) == 7000
    assert user_timeout(client) == 0, "outgoing connections (to Redis, say) are left alone"
    assert user_timeout(other) == 0
    later = socket.create_connection(listener.getsockname())
    try:
        accepted_later, _ = listener.accept()
        assert user_timeout(accepted_later) == 7000, "inherited from the listening socket"
        accepted_later.close()
    finally:
        later.close()


@override_settings(HUBBUB_STALLED_CLIENT_TIMEOUT=7)
def test_install_runs_once_per_process_and_leaves_the_descriptors_open(fresh, server_and_client):
    listener, accepted, _, _ = server_and_client
    tcp_user_timeout.install()
    tcp_user_timeout.apply(listener, 1)
    tcp_user_timeout.install()
    assert user_timeout(listener) == 1000
    assert listener.fileno() >= 0 and accepted.getpeername()


@override_settings(HUBBUB_STALLED_CLIENT_TIMEOUT=None)
def test_none_leaves_sockets_alone(fresh, server_and_client):
    listener = server_and_client[0]
    tcp_user_timeout.install()
    assert user_timeout(listener) == 0


@pytest.mark.parametrize("value", [0, -1, "30", True])
def test_a_bad_setting_is_one_error_line_and_no_exception_at_connection_time(fresh, server_and_client, value, caplog):
    with override_settings(HUBBUB_STALLED_CLIENT_TIMEOUT=value), caplog.at_level(logging.ERROR):
        with pytest.raises(ValueError, match="HUBBUB_STALLED_CLIENT_TIMEOUT must be a positive number"):
            tcp_user_timeout.configured_timeout()
        tcp_user_timeout.install()
    assert user_timeout(server_and_client[0]) == 0
    (record,) = caplog.records
    assert "HUBBUB_STALLED_CLIENT_TIMEOUT" in record.getMessage() and record.exc_info is None


def test_the_default_matches_the_documented_thirty_seconds():
    assert tcp_user_timeout.DEFAULT_TIMEOUT == 30.0
    assert tcp_user_timeout.configured_timeout() == 30.0

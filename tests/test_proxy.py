"""hubbub.proxy.ProxyHeadersMiddleware: which peers are believed, and which forwarded address is the client."""

from __future__ import annotations

from typing import Any

import pytest

from hubbub.proxy import ProxyHeadersMiddleware


async def seen_scope(
    client: tuple[str, int] | None, headers: list[tuple[bytes, bytes]], kind: str = "http", **options: Any
) -> dict[str, Any]:
    """The scope the application behind the middleware receives."""
    seen: dict[str, Any] = {}

    async def app(scope, receive, send):
        seen.update(scope)

    scope = {"type": kind, "client": client, "scheme": "ws" if kind == "websocket" else "http", "headers": headers}
    await ProxyHeadersMiddleware(app, **options)(scope, None, None)
    return seen


def forwarded(for_: str, proto: str = "https") -> list[tuple[bytes, bytes]]:
    return [(b"x-forwarded-for", for_.encode()), (b"x-forwarded-proto", proto.encode())]


@pytest.mark.parametrize(
    "peer, header, options, client",
    [
        (None, "203.0.113.7", {}, ("203.0.113.7", 0)),  # a unix socket's peer: the local nginx
        (("127.0.0.1", 5000), "203.0.113.7", {}, ("203.0.113.7", 0)),
        (("::1", 5000), "203.0.113.7:4711", {}, ("203.0.113.7", 4711)),
        (None, "6.6.6.6, 203.0.113.7", {}, ("203.0.113.7", 0)),  # the client wrote 6.6.6.6 itself
        (None, "6.6.6.6, 203.0.113.7, 10.0.0.2", {"trusted_hosts": "10.0.0.0/8"}, ("203.0.113.7", 0)),
        (None, "[2001:db8::1]:443", {}, ("2001:db8::1", 443)),
        (None, "127.0.0.1, ::1", {}, ("127.0.0.1", 0)),  # every hop a proxy: the first one
        (("192.0.2.1", 5000), "6.6.6.6", {}, ("192.0.2.1", 5000)),  # an untrusted peer is not believed
        (None, "203.0.113.7", {"trust_unix_socket": False}, None),
        (("192.0.2.1", 5000), "6.6.6.6, 203.0.113.7", {"trusted_hosts": "*"}, ("6.6.6.6", 0)),
    ],
)
async def test_client_address(peer, header, options, client):
    assert (await seen_scope(peer, forwarded(header), **options))["client"] == client


@pytest.mark.parametrize(
    "kind, proto, scheme",
    [
        ("http", "https", "https"),
        ("websocket", "https", "wss"),
        ("websocket", "http", "ws"),
        ("http", "wss", "https"),
        ("http", "gopher", "http"),
    ],
)
async def test_scheme_follows_the_forwarded_proto(kind, proto, scheme):
    assert (await seen_scope(None, forwarded("203.0.113.7", proto), kind))["scheme"] == scheme


async def test_untrusted_peers_keep_their_own_scheme():
    assert (await seen_scope(("192.0.2.1", 1), forwarded("1.2.3.4")))["scheme"] == "http"


async def test_no_forwarded_headers_change_nothing():
    assert (await seen_scope(None, []))["client"] is None


def test_a_trusted_host_that_is_not_an_address_is_refused_at_start():
    with pytest.raises(ValueError, match="'nginx.local' in trusted_hosts is not an IP address"):
        ProxyHeadersMiddleware(None, trusted_hosts=["127.0.0.1", "nginx.local"])

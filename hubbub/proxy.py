"""The client's address and scheme from a reverse proxy's ``X-Forwarded-For`` / ``X-Forwarded-Proto``.

Behind nginx every connection comes from nginx, so ``scope['client']`` names the proxy
(or, on a unix socket, nothing at all: ``None``). ``ProxyHeadersMiddleware`` believes the
forwarded headers only when the connection comes from a trusted proxy: an address in
``trusted_hosts`` or, with ``trust_unix_socket``, the peer of a unix socket (whom the
socket file's permissions let in, i.e. the local nginx). It then takes the client from
``X-Forwarded-For`` read from the right: each proxy appends the address it saw, so the
first address that is not a trusted proxy is the client, whatever a client wrote at the
left end itself. uvicorn's own ``--forwarded-allow-ips`` cannot trust a unix socket's
peer except with ``*``, which believes the leftmost, client-written, address.
"""

from __future__ import annotations

import ipaddress
from typing import Iterable, List, Optional, Tuple, Union

from .typing import ASGIApp, Receive, Scope, Send

__all__ = ["DEFAULT_TRUSTED_HOSTS", "ProxyHeadersMiddleware"]

#: A proxy on the same machine (uvicorn's and gunicorn's default).
DEFAULT_TRUSTED_HOSTS = ("127.0.0.1", "::1")

_Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]
_SCHEMES = {"http", "https", "ws", "wss"}


def _networks(trusted_hosts: Iterable[str]) -> List[_Network]:
    networks = []
    for entry in trusted_hosts:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise ValueError(f"{entry!r} in trusted_hosts is not an IP address or network (or '*')") from None
    return networks


def _address(entry: str) -> Tuple[str, int]:
    """``(host, port)`` of one ``X-Forwarded-For`` entry: ``1.2.3.4``, ``1.2.3.4:80``, ``[::1]:80`` or ``::1``."""
    entry = entry.strip()
    if entry.startswith("[") and "]" in entry:
        host, _, rest = entry[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif entry.count(":") == 1:
        host, _, port = entry.partition(":")
    else:
        host, port = entry, ""
    return host, int(port) if port.isdigit() else 0


class ProxyHeadersMiddleware:
    """Sets ``scope['client']`` and ``scope['scheme']`` from a trusted proxy's forwarded headers.

    ``trusted_hosts``: addresses and networks of the proxies (``"10.0.0.0/8"``), or
    ``"*"`` to believe any peer. ``trust_unix_socket``: also believe a unix socket's peer.
    """

    def __init__(
        self,
        app: ASGIApp,
        trusted_hosts: Union[str, Iterable[str]] = DEFAULT_TRUSTED_HOSTS,
        trust_unix_socket: bool = True,
    ):
        self.app = app
        if isinstance(trusted_hosts, str):
            trusted_hosts = trusted_hosts.split(",")
        hosts = [host.strip() for host in trusted_hosts if host.strip()]
        self.trust_everyone = "*" in hosts
        self.networks = [] if self.trust_everyone else _networks(hosts)
        self.trust_unix_socket = trust_unix_socket

    def is_trusted(self, host: Optional[str]) -> bool:
        """Whether a peer or forwarded address is one of the trusted proxies."""
        if self.trust_everyone:
            return True
        try:
            address = ipaddress.ip_address(host or "")
        except ValueError:
            return False
        return any(address in network for network in self.networks)

    def peer_is_trusted(self, client: Optional[Tuple[str, int]]) -> bool:
        if not client or not client[0]:
            return self.trust_unix_socket or self.trust_everyone  # a unix socket: no address
        return self.is_trusted(client[0])

    def client_from(self, forwarded_for: str) -> Optional[Tuple[str, int]]:
        """The rightmost address that is not a trusted proxy (the leftmost when all are)."""
        entries = [entry for entry in (part.strip() for part in forwarded_for.split(",")) if entry]
        if not entries:
            return None
        for entry in reversed(entries):
            host, port = _address(entry)
            if not self.is_trusted(host):
                return host, port
        return _address(entries[0])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and self.peer_is_trusted(scope.get("client")):
            scope = self.forwarded_scope(scope)
        return await self.app(scope, receive, send)

    def forwarded_scope(self, scope: Scope) -> Scope:
        forwarded_for, proto = [], None
        for name, value in scope.get("headers", ()):
            if name == b"x-forwarded-for":
                forwarded_for.append(value.decode("latin-1"))
            elif name == b"x-forwarded-proto":
                proto = value.decode("latin-1").strip().lower()
        scope = dict(scope)
        if proto in _SCHEMES:
            secure = proto in ("https", "wss")
            if scope["type"] == "websocket":
                scope["scheme"] = "wss" if secure else "ws"
            else:
                scope["scheme"] = "https" if secure else "http"
        client = self.client_from(",".join(forwarded_for)) if forwarded_for else None
        if client is not None:
            scope["client"] = client
        return scope

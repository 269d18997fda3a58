"""Origin checks on WebSocket handshakes: the patterns, the refusal, and what gets logged."""

from __future__ import annotations

import logging
from urllib.parse import urlparse

import pytest

from hubbub.security.websocket import AllowedHostsOriginValidator, OriginValidator, WebsocketDenier
from hubbub.testing import HttpCommunicator, WebsocketCommunicator
from tests.asgi_app import Echo


async def handshake(validator_factory, origin):
    headers = [(b"origin", origin)] if origin is not None else []
    communicator = WebsocketCommunicator(validator_factory(Echo.as_asgi()), "/ws/echo/", headers=headers)
    accepted, _ = await communicator.connect()
    if accepted:
        await communicator.send_to(text_data="ping")
        assert await communicator.receive_from() == "ping"
        await communicator.disconnect()
    else:
        await communicator.disconnect(code=1006)  # what the server tells the app after its 403
    return accepted


CASES = [
    # (allowed patterns, Origin header, accepted?)
    (["*"], b"https://anything.example", True),
    (["*"], None, True),
    (["example.com"], b"http://example.com", True),
    (["example.com"], b"https://example.com:8443", True),  # a bare host: any scheme, any port
    (["example.com"], b"http://EXAMPLE.com", True),
    (["example.com"], b"http://www.example.com", False),
    (["example.com"], b"http://example.com.evil.net", False),
    (["example.com"], b"http://notexample.com", False),
    ([".example.com"], b"http://example.com", True),
    ([".example.com"], b"https://chat.eu.example.com", True),
    ([".example.com"], b"https://evilexample.com", False),
    (["example.com:8000"], b"http://example.com:8000", True),
    (["example.com:8000"], b"http://example.com:9000", False),
    (["https://example.com"], b"https://example.com", True),
    (["https://example.com"], b"https://example.com:443", True),
    (["https://example.com"], b"http://example.com", False),  # scheme differs
    (["https://example.com"], b"https://example.com:8443", False),  # port differs
    (["http://example.com:8000"], b"http://example.com:8000", True),
    (["https://.example.com"], b"https://a.example.com", True),
    (["https://.example.com"], b"http://a.example.com", False),
    (["[::1]"], b"http://[::1]:8000", True),
    (["example.com"], None, False),  # no Origin header at all
    (["example.com"], b"null", False),  # sandboxed iframe, file:// page
    (["example.com"], b"", False),
    (["example.com"], b"http://[::1", False),  # unparseable
    (["example.com"], b"http://example.com:99999", True),  # host matches; a bad port only matters to port checks
    (["example.com:80"], b"http://example.com:99999", False),
    (["example.com"], b"\xff\xfe", False),
    ([], b"http://example.com", False),
]


@pytest.mark.parametrize("allowed, origin, accepted", CASES)
async def test_origin_patterns(allowed, origin, accepted):
    assert await handshake(lambda app: OriginValidator(app, allowed), origin) is accepted


async def test_refusal_happens_before_accept_and_is_logged_with_the_origin(caplog):
    app = OriginValidator(Echo.as_asgi(), ["example.com"])
    communicator = WebsocketCommunicator(app, "/ws/echo/", headers=[(b"origin", b"https://attacker.example")])
    await communicator.send_input({"type": "websocket.connect"})
    with caplog.at_level(logging.WARNING, logger="hubbub.security"):
        first = await communicator.receive_output()
    assert first["type"] == "websocket.close"  # the server turns this into HTTP 403
    assert "'https://attacker.example'" in caplog.text and "/ws/echo/" in caplog.text

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="hubbub.security"):
        assert not await handshake(lambda a: OriginValidator(a, ["example.com"]), None)
    assert "header missing" in caplog.text


def test_helper_methods_match_channels_names():
    validator = OriginValidator(None, ["example.com"])
    assert validator.get_origin_port(urlparse("https://example.com")) == 443
    assert validator.get_origin_port(urlparse("ws://example.com")) == 80
    assert validator.get_origin_port(urlparse("http://example.com:8080")) == 8080
    assert validator.get_origin_port(urlparse("ftp://example.com")) is None
    assert validator.get_origin_port(None) is None
    assert validator.match_allowed_origin(urlparse("http://a.example.com"), ".example.com")
    assert not validator.match_allowed_origin(None, "example.com")
    assert validator.valid_origin(urlparse("http://example.com"))
    assert not validator.valid_origin(None)
    assert validator.validate_origin(urlparse("https://example.com"))


async def test_allowed_hosts_validator_follows_allowed_hosts(settings):
    settings.ALLOWED_HOSTS = ["chat.example.org", ".example.net"]
    assert await handshake(AllowedHostsOriginValidator, b"https://chat.example.org")
    assert await handshake(AllowedHostsOriginValidator, b"https://www.example.net")
    assert not await handshake(AllowedHostsOriginValidator, b"http://localhost:8000")


@pytest.mark.parametrize("debug, accepted", [(True, True), (False, False)])
async def test_empty_allowed_hosts_mean_localhost_in_debug_only(settings, debug, accepted):
    settings.ALLOWED_HOSTS = []
    settings.DEBUG = debug
    for origin in (b"http://localhost:8000", b"http://127.0.0.1:8000", b"http://[::1]:8000", b"http://app.localhost"):
        assert await handshake(AllowedHostsOriginValidator, origin) is accepted
    assert not await handshake(AllowedHostsOriginValidator, b"http://example.com")


async def test_websocket_denier_refuses():
    communicator = WebsocketCommunicator(WebsocketDenier.as_asgi(), "/")
    assert (await communicator.connect())[0] is False


async def test_origin_validator_is_for_websockets_only():
    communicator = HttpCommunicator(OriginValidator(Echo.as_asgi(), ["*"]), "GET", "/")
    with pytest.raises(ValueError, match="WebSocket"):
        await communicator.get_response()

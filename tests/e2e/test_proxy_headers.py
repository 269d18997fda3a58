"""gunicorn with hubbub's worker on a unix socket behind a real nginx (TLS): the client's address and https.

nginx's configuration and gunicorn's command are docs/deployment.md's. The client connects
from 127.0.0.2 over HTTPS, so a view that reports ``REMOTE_ADDR`` = 127.0.0.2 and scheme
https (and a consumer reporting wss) can only have read them from nginx's forwarded headers.
"""

from __future__ import annotations

import asyncio
import shutil
import sys

import pytest

from tests.e2e.deployment import (
    CLIENT_ADDRESS,
    command,
    first_message,
    https_client,
    nginx_config,
    open_to_nginx,
    self_signed_certificate,
    socket_directory,
)
from tests.e2e.test_django_serving import wait_for_unix_socket
from tests.nginx import nginx, require_nginx
from tests.servers import ROOT, Process


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    pytest.importorskip("uvicorn_worker", reason="gunicorn and uvicorn-worker are in the test extra")
    require_nginx()
    directory = tmp_path_factory.mktemp("proxy")
    sockets = socket_directory()
    sock = sockets / "web.sock"
    argv = command(
        "Production with gunicorn and uvicorn workers",
        "gunicorn",
        {
            "myproject.asgi:application": "tests.deploy_site.asgi:application",
            "--workers 4": "--workers 1",
            "unix:/run/hubbub/web.sock": f"unix:{sock}",
        },
    )
    env = {"DJANGO_SETTINGS_MODULE": "tests.deploy_site.settings", "PYTHONPATH": str(ROOT)}
    cert, key = self_signed_certificate(directory)
    config = nginx_config(
        "nginx",
        {
            "unix:/run/hubbub/web.sock": "{upstream}",
            "listen 443 ssl;": "listen {listen} ssl;",
            "# ssl_certificate ... ;": f"ssl_certificate {cert}; ssl_certificate_key {key};",
            "/srv/myproject/static/": f"{directory}/",
        },
    )
    try:
        with Process([sys.executable, "-m", *argv], ROOT, env) as gunicorn:
            wait_for_unix_socket(sock)
            open_to_nginx(sock)
            with nginx(config, upstream=f"unix:{sock}") as proxy:
                proxy.https = proxy.url.replace("http:", "https:")
                proxy.wss = proxy.ws_url.replace("ws:", "wss:")
                yield proxy
    finally:
        shutil.rmtree(sockets, ignore_errors=True)
    assert "Traceback" not in gunicorn.output(), gunicorn.output()


def test_a_view_sees_the_clients_address_and_https(site):
    with https_client(site.https) as client:
        response = client.get("/whereami/")
    assert response.status_code == 200, site.error_log()[-2000:]
    answer = response.json()
    assert answer == {"client": CLIENT_ADDRESS, "scheme": "https", "server": "asgi"}


def test_a_consumer_sees_the_clients_address_and_wss(site):
    assert asyncio.run(first_message(site.wss + "/ws/whereami/")) == {"client": CLIENT_ADDRESS, "scheme": "wss"}


def test_an_address_the_client_forges_is_not_believed(site):
    forged = {"X-Forwarded-For": "6.6.6.6", "X-Forwarded-Proto": "http"}
    with https_client(site.https) as client:
        assert client.get("/whereami/", headers=forged).json()["client"] == CLIENT_ADDRESS
    assert asyncio.run(first_message(site.wss + "/ws/whereami/", forged))["client"] == CLIENT_ADDRESS

"""The deployment of the Channels tutorials, end to end: nginx, uwsgi for views, uvicorn for /ws/, supervisord.

A real supervisord (its own config, socket and pidfile in a temporary directory, in the
foreground) runs the two programs docs/deployment.md gives, a real nginx runs that page's
configuration, and both Django processes share a Redis (a unique prefix). Pages come from
the WSGI process, sockets from the ASGI process, and a push from a view in the WSGI process
reaches the sockets through Redis. Where uwsgi cannot run Django here, gunicorn's sync
workers stand in (the page's alternative). Everything is stopped by PID and
``supervisorctl shutdown`` at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import websockets

from tests.conftest import REDIS_HOST, REDIS_PORT, redis_available
from tests.docblocks import block
from tests.e2e.deployment import CLIENT_ADDRESS, first_message, https_client, nginx_config, socket_directory, substitute
from tests.e2e.test_django_serving import wait_for_unix_socket
from tests.nginx import nginx, require_nginx
from tests.servers import ROOT, Process

HEADING = "Views on a WSGI server, sockets on an ASGI server (supervisord)"
SUPERVISORD, SUPERVISORCTL, UWSGI = shutil.which("supervisord"), shutil.which("supervisorctl"), shutil.which("uwsgi")
VENV = Path(sys.prefix)

_MAIN = """\
[supervisord]
nodaemon=true
pidfile={dir}/supervisord.pid
logfile={dir}/supervisord.log
childlogdir={dir}

[unix_http_server]
file={dir}/supervisor.sock

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{dir}/supervisor.sock

"""

# Django and the Redis layer the views push through: the plugin's Python may be older than the
# virtualenv's (Debian's is 3.11.2, where redis-py also needs async-timeout).
_UWSGI_PROBE = """\
import os
os.environ["DJANGO_SETTINGS_MODULE"] = "tests.deploy_site.settings"
os.environ["HUBBUB_TEST_REDIS"] = "redis://127.0.0.1:6379/0"
from django.core.wsgi import get_wsgi_application
get_wsgi_application()
from hubbub.layers import get_channel_layer
get_channel_layer()
print("uwsgi runs Django")
"""


def skip_or_fail(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true: {reason}")
    pytest.skip(reason)


def uwsgi_python(directory: Path) -> list[str] | None:
    """How uwsgi's python3 plugin finds this virtualenv's packages, or ``None`` where it cannot run Django.

    As documented, ``--virtualenv``; a virtualenv made by another build of Python than the
    plugin's (here pyenv's 3.11.7, against Debian's 3.11.2 plugin) cannot be used that way,
    because its standard library does not load into the plugin's interpreter; then the
    plugin's own standard library with the virtualenv's packages on the path.
    """
    if UWSGI is None:
        return None
    probe = directory / "probe.py"
    probe.write_text(_UWSGI_PROBE)
    site_packages = VENV / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    for option in (["--virtualenv", str(VENV)], ["--pythonpath", str(site_packages)]):
        try:
            result = subprocess.run(
                [UWSGI, "--plugin", "python3", *option, "--pyrun", str(probe)],
                cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
                capture_output=True,
                text=True,
                timeout=30,
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        if "uwsgi runs Django" in result.stdout + result.stderr:
            return option
    return None


def programs(sockets: Path, logs: Path, python: list[str] | None) -> str:
    """deployment.md's supervisord programs for this checkout (gunicorn's sync workers where uwsgi cannot run)."""
    text = block("deployment.md", HEADING, "ini", "[program:")
    if python is not None:
        text = substitute(text, {"--virtualenv /srv/myproject/venv": " ".join(python)})
    text = substitute(
        text,
        {
            "/srv/myproject/venv": str(VENV),
            "/srv/myproject": str(ROOT),
            "/run/hubbub": str(sockets),
            "/var/log/myproject": str(logs),
            "myproject.asgi:application": "tests.deploy_site.asgi:application",
            "myproject.wsgi:application": "tests.deploy_site.wsgi:application",
            'DJANGO_SETTINGS_MODULE="myproject.settings"': 'DJANGO_SETTINGS_MODULE="tests.deploy_site.settings"',
            "user=myproject\n": "",  # the test runs as one user
            "--chmod-socket=660": "--chmod-socket=666",  # nginx's worker is another user; no www-data group here
        },
    )
    if python is None:
        start = text.index("command=/usr/bin/uwsgi")
        end = text.index("\ndirectory=", start)
        text = (
            text[:start]
            + (
                f"command={VENV}/bin/gunicorn tests.deploy_site.wsgi:application --workers 2"
                f" --bind unix:{sockets}/wsgi.sock --umask 0"
            )
            + text[end:]
        )
    return text


def nginx_split_config(use_uwsgi: bool) -> str:
    config = nginx_config(
        HEADING,
        {
            "unix:/run/hubbub/asgi.sock": "{asgi}",
            "unix:/run/hubbub/wsgi.sock": "{wsgi}",
            "listen 443 ssl;": "listen {listen};",
            "/srv/myproject/static/": "{prefix}/",
            "include uwsgi_params;": "include /etc/nginx/uwsgi_params;",
        },
    )
    if not use_uwsgi:  # the page's gunicorn alternative
        config = substitute(
            config,
            {
                "include /etc/nginx/uwsgi_params;": "proxy_set_header Host $host;\n"
                "        proxy_set_header X-Forwarded-For $remote_addr;",
                "uwsgi_pass hubbub_wsgi;": "proxy_pass http://hubbub_wsgi;",
            },
        )
    return config


def supervisorctl(conf: Path, *args: str) -> str:
    return subprocess.run([SUPERVISORCTL, "-c", str(conf), *args], capture_output=True, text=True, timeout=30).stdout


def program_pids(conf: Path) -> dict[str, int]:
    """PID of each running program, from ``supervisorctl status``."""
    pids = {}
    for line in supervisorctl(conf, "status").splitlines():
        parts = line.split()
        if len(parts) > 3 and parts[1] == "RUNNING":
            pids[parts[0]] = int(parts[3].rstrip(","))
    return pids


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.fixture(scope="module")
def deployment(tmp_path_factory) -> Iterator[Process]:
    for name, path in (("supervisord", SUPERVISORD), ("supervisorctl", SUPERVISORCTL)):
        if path is None:
            skip_or_fail(f"{name} is not installed (Debian: apt-get install supervisor)")
    require_nginx()
    if not redis_available():
        skip_or_fail(f"no Redis on {REDIS_HOST}:{REDIS_PORT}")
    redis_url, prefix = f"redis://{REDIS_HOST}:{REDIS_PORT}/0", "hubbubtest" + uuid.uuid4().hex[:10]
    directory = tmp_path_factory.mktemp("split")
    # HUBBUB_TEST_WSGI=gunicorn tries the fallback where uwsgi would work.
    python = None if os.environ.get("HUBBUB_TEST_WSGI") == "gunicorn" else uwsgi_python(directory)
    use_uwsgi = python is not None
    if not use_uwsgi:
        pytest.importorskip("gunicorn", reason="neither uwsgi nor gunicorn can run Django here")
    sockets = socket_directory()
    conf = directory / "supervisord.conf"
    conf.write_text(_MAIN.format(dir=directory) + programs(sockets, directory, python))
    env = {"HUBBUB_TEST_REDIS": redis_url, "HUBBUB_TEST_PREFIX": prefix, "PYTHONPATH": str(ROOT)}
    supervisor = Process([SUPERVISORD, "-c", str(conf)], directory, env)
    pids: dict[str, int] = {}
    try:
        supervisor.start()
        for sock in ("asgi.sock", "wsgi.sock"):
            wait_for_unix_socket(sockets / sock, timeout=30)
        # supervisord reports a program RUNNING only after its startsecs, which a loaded machine
        # may not have reached when the sockets appear.
        deadline = time.monotonic() + 30
        while len(pids := program_pids(conf)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        config = nginx_split_config(use_uwsgi)
        with nginx(config, extra={"asgi": f"unix:{sockets}/asgi.sock", "wsgi": f"unix:{sockets}/wsgi.sock"}) as proxy:
            proxy.wsgi_server = "uwsgi" if use_uwsgi else "gunicorn"
            yield proxy
    finally:
        supervisorctl(conf, "shutdown")
        with contextlib.suppress(subprocess.TimeoutExpired):
            supervisor.proc.wait(30)
        supervisor.stop()  # by PID, should shutdown not have ended it
        shutil.rmtree(sockets, ignore_errors=True)
        logs = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')}" for p in directory.glob("*.log"))
        print(logs)
    assert set(pids) == {"myproject:myproject-asgi", "myproject:myproject-wsgi"}, logs
    deadline = time.monotonic() + 10
    while not all(gone(pid) for pid in pids.values()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert all(gone(pid) for pid in pids.values()), f"still running after shutdown: {pids}"
    assert "Traceback" not in logs, logs


def test_pages_come_from_the_wsgi_server_with_the_clients_address(deployment):
    with https_client(deployment.url) as client:
        response = client.get("/whereami/")
    assert response.status_code == 200, deployment.error_log()[-2000:]
    answer = response.json()
    assert (answer["server"], answer["scheme"]) == ("wsgi", "http")
    if deployment.wsgi_server == "uwsgi":  # uwsgi_params pass nginx's $remote_addr; gunicorn's sync workers do not
        assert answer["client"] == CLIENT_ADDRESS


def test_websockets_go_to_the_asgi_server(deployment):
    reply = asyncio.run(first_message(deployment.ws_url + "/ws/whereami/"))
    assert reply == {"client": CLIENT_ADDRESS, "scheme": "ws"}


def test_a_push_from_a_wsgi_view_reaches_the_asgi_processes_sockets(deployment):
    async def scenario() -> list[dict]:
        async with (
            websockets.connect(deployment.ws_url + "/ws/push/") as one,
            websockets.connect(deployment.ws_url + "/ws/push/") as two,
        ):
            for ws in (one, two):
                assert json.loads(await asyncio.wait_for(ws.recv(), 10)) == {"joined": "deploy-push"}
            with https_client(deployment.url) as client:
                answer = await asyncio.to_thread(client.get, "/push/", params={"text": "from the view"})
            assert answer.json() == {"pushed": "from the view", "server": "wsgi"}
            return [json.loads(await asyncio.wait_for(ws.recv(), 10)) for ws in (one, two)]

    assert asyncio.run(scenario()) == [{"text": "from the view"}] * 2

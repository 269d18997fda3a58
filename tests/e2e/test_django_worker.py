"""``manage.py runworker`` processing work a view sent, across processes through the Redis layer."""

from __future__ import annotations

import shutil
import signal
import sys
import time
import uuid

import httpx
import pytest

from tests.django_app.site import env_for, migrated_database, site_uvicorn
from tests.servers import ROOT, Process, redis_server

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")


def done(web) -> list:
    response = httpx.get(f"{web.url}/thumbnails/")
    assert response.status_code == 200, web.output()
    return response.json()["done"]


def test_view_sends_work_that_runworker_does(tmp_path):
    db = migrated_database(tmp_path)
    with redis_server() as redis:
        layer_env = {"HUBBUB_TEST_REDIS": redis.url, "HUBBUB_TEST_PREFIX": "w" + uuid.uuid4().hex[:8]}
        worker = Process(
            [sys.executable, "-m", "django", "runworker", "thumbnails", "-v", "2"], ROOT, env_for(db, **layer_env)
        ).start(wait=False)
        try:
            with site_uvicorn(db, env=layer_env) as web:
                for name in ("a.png", "b.png", "c.png"):
                    response = httpx.post(f"{web.url}/thumbnail/{name}/")
                    assert response.status_code == 202 and response.json() == {"queued": name}
                deadline = time.monotonic() + 30
                while done(web) != ["a.png", "b.png", "c.png"]:
                    assert worker.proc.poll() is None, worker.output()
                    assert time.monotonic() < deadline, worker.output()
                    time.sleep(0.05)
            worker.proc.send_signal(signal.SIGTERM)
            assert worker.proc.wait(15) == 0, worker.output()
        finally:
            worker.kill()
    output = worker.output()
    assert "worker listening on thumbnails" in output and "worker stopped" in output
    assert "in-memory" not in output and "Traceback" not in output

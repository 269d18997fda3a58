"""manage.py hubbub_status against two real uvicorn processes, and what it does with bad URLs."""

from __future__ import annotations

import asyncio
import io
import json

import httpx
import pytest
import websockets
from django.core.management import CommandError, call_command

from hubbub.management.commands.hubbub_status import parse
from tests.servers import ROOT, free_port, uvicorn

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def servers():
    first, second = (
        uvicorn("tests.e2e.backpressure_app:application", cwd=ROOT, env={"DJANGO_SETTINGS_MODULE": "tests.settings"})
        for _ in range(2)
    )
    with first, second:
        yield first, second


def status(*urls: str) -> tuple:
    out, err = io.StringIO(), io.StringIO()
    call_command("hubbub_status", *[arg for url in urls for arg in ("--url", url)], stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


async def test_shows_connections_per_process_and_the_busiest_groups(servers):
    first, second = servers
    clients = [await websockets.connect(first.ws_url + "/ws/flood/close/") for _ in range(3)]
    clients.append(await websockets.connect(second.ws_url + "/ws/flood/drop/"))
    try:
        async with httpx.AsyncClient() as http:
            response = await http.get(f"{first.url}/publish/", params={"n": 7, "size": 1, "rate": 1000})
            assert json.loads(response.text)["seconds"] >= 0
        for ws in clients[:3]:
            for _ in range(7):
                await ws.recv()
        out, err = await asyncio.to_thread(status, first.url + "/metrics/", second.url + "/metrics/")
    finally:
        for ws in clients:
            await ws.close()
    lines = out.splitlines()
    rows = {line.split()[1]: line.split() for line in lines[1:3]}
    assert set(rows) == {str(first.pid), str(second.pid)}
    assert rows[str(first.pid)][2] == "3" and rows[str(second.pid)][2] == "1", out
    assert lines[3].split()[:3] == ["all", "2", "4"], out
    assert "busiest groups" in out
    assert any(line.split() == ["7", "flood"] for line in lines), out
    assert err == ""


def test_one_unreachable_url_is_reported_and_the_others_still_shown(servers):
    dead = f"http://127.0.0.1:{free_port()}/metrics/"
    out, err = status(servers[0].url + "/metrics/", dead)
    assert str(servers[0].pid) in out
    assert f"unreachable: {dead}" in err


def test_no_url_answering_is_an_error():
    with pytest.raises(CommandError, match="No server process answered"):
        status(f"http://127.0.0.1:{free_port()}/metrics/")


def test_an_endpoint_that_is_not_hubbubs_is_said_to_be_so(servers):
    err = io.StringIO()
    with pytest.raises(CommandError, match="No server process answered"):
        call_command(
            "hubbub_status", "--url", servers[0].url + "/publish/?n=0&size=0&rate=1", stdout=io.StringIO(), stderr=err
        )
    assert "not a hubbub metrics endpoint" in err.getvalue()


@pytest.mark.parametrize(
    "args, words",
    [
        ([], "Give the metrics URL of each server process"),
        (["--url", "127.0.0.1:8000/metrics/"], "must be an http:// or https:// URL"),
        (["--url", "file:///etc/passwd"], "must be an http:// or https:// URL"),
        (["--url", "http://127.0.0.1:1/metrics/", "--timeout", "0"], "--timeout must be a positive number"),
        (["--url", "http://127.0.0.1:1/metrics/", "--timeout", "nan"], "--timeout must be a positive number"),
    ],
)
def test_missing_or_malformed_urls_are_refused_before_any_request(args, words):
    with pytest.raises(CommandError, match=words):
        call_command("hubbub_status", *args, stdout=io.StringIO())


def test_parse_reads_labels_with_escapes_and_skips_comments():
    text = (
        "# HELP x_total demo\n# TYPE x_total counter\n"
        'x_total{type="a\\"b",other="c\\\\d\\ne"} 3\nplain 1.5\nnan_gauge NaN\n'
    )
    samples = parse(text)
    assert samples["x_total"] == [({"type": 'a"b', "other": "c\\d\ne"}, 3.0)]
    assert samples["plain"] == [({}, 1.5)]
    assert samples["nan_gauge"][0][1] != samples["nan_gauge"][0][1]

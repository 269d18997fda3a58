"""``HUBBUB_GC``: settings, thresholds and freezes, collection pauses in the metrics.

Everything that changes the collector runs in a child interpreter or a server process,
so this test process's garbage collection stays as CPython set it up.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import subprocess
import sys
import textwrap
from typing import Any

import httpx
import pytest
import websockets

from hubbub import gctune, metrics
from hubbub.management.commands.hubbub_status import parse
from tests.servers import ROOT, Process, free_port, uvicorn
from tests.waiting import eventually_sync

GC_SITE = "tests.gc_site.settings"
SITE = {"DJANGO_SETTINGS_MODULE": GC_SITE}


@pytest.mark.parametrize(
    "value, message",
    [
        ([("freeze", True)], "HUBBUB_GC must be a dict (keys: freeze, thresholds"),
        ({"freez": True}, "HUBBUB_GC has unknown key(s) freez; known keys: freeze, thresholds"),
        ({"freeze": 1}, "HUBBUB_GC['freeze'] must be True or False, got 1"),
        ({"measure": "yes"}, "HUBBUB_GC['measure'] must be True or False, got 'yes'"),
        ({"thresholds": (700, 10)}, "HUBBUB_GC['thresholds'] must be three positive integers or None"),
        ({"thresholds": "700"}, "HUBBUB_GC['thresholds'] must be three positive integers or None"),
        ({"thresholds": (0, 10, 10)}, "HUBBUB_GC['thresholds'] must be a positive integer, got 0"),
        ({"thresholds": (700, 10.5, 10)}, "HUBBUB_GC['thresholds'] must be a positive integer, got 10.5"),
        ({"freeze_after_connections": 0}, "HUBBUB_GC['freeze_after_connections'] must be a positive integer or None"),
        ({"thaw_after_closes": True}, "HUBBUB_GC['thaw_after_closes'] must be a positive integer or None, got True"),
        ({"delay_seconds": -1}, "HUBBUB_GC['delay_seconds'] must be a number of seconds in [0, 60], got -1"),
        ({"delay_seconds": "1"}, "HUBBUB_GC['delay_seconds'] must be a number of seconds in [0, 60], got '1'"),
    ],
)
def test_a_bad_setting_is_refused_naming_the_key_and_what_it_accepts(value: Any, message: str) -> None:
    with pytest.raises(ValueError) as refused:
        gctune.parse_policy(value)
    assert str(refused.value).startswith(message)


def test_an_empty_setting_is_the_default_policy_and_lists_are_accepted_for_thresholds() -> None:
    assert gctune.parse_policy(None) is None
    assert gctune.parse_policy({}) == gctune.DEFAULT_POLICY
    policy = gctune.parse_policy({"thresholds": [1000, 5, 5], "freeze_after_connections": None, "delay_seconds": 2})
    assert policy == gctune.GCPolicy(thresholds=(1000, 5, 5), freeze_after_connections=None, delay_seconds=2.0)
    assert gctune.parse_policy({"thresholds": None}).thresholds is None  # type: ignore[union-attr]


def run_child(setting: Any, body: str, timeout: float = 60) -> dict[str, Any]:
    """Run ``body`` in a fresh interpreter after ``django.setup()`` with ``HUBBUB_GC = setting``
    (absent if ``...``); ``body`` sets ``result``, returned as JSON. stderr is in ``result["stderr"]``."""
    configure = {"INSTALLED_APPS": ["hubbub"]}
    script = (
        textwrap.dedent(
            """
        import asyncio, gc, json, logging, sys
        logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s %(message)s")
        from django.conf import settings
        options = json.loads(sys.argv[1])
        if sys.argv[2] != "absent":
            options["HUBBUB_GC"] = json.loads(sys.argv[2])
        threshold_before = gc.get_threshold()
        settings.configure(**options)
        import django
        from hubbub import gctune
        result = {}
        """
        )
        + textwrap.dedent(body)
        + "\nprint(json.dumps(result))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, json.dumps(configure), "absent" if setting is ... else json.dumps(setting)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["stderr"] = done.stderr
    return result


def test_thresholds_apply_at_django_setup_and_the_startup_freeze_happens_once_when_the_server_is_ready() -> None:
    result = run_child(
        {"thresholds": [40000, 11, 12]},
        """
        django.setup()  # hubbub's ready() installs
        result["threshold"] = gc.get_threshold()
        result["frozen_before_start"] = gc.get_freeze_count()
        gctune.started()
        gctune.started()
        gctune.install()
        result["frozen"] = gc.get_freeze_count()
        stats = gctune.stats()
        result["freezes"] = stats.freezes
        result["full_collections"] = stats.collections[2]
        result["measuring"] = stats.measuring
        """,
    )
    assert result["threshold"] == [40000, 11, 12]
    assert result["frozen_before_start"] == 0
    assert result["frozen"] > 10_000  # Django and hubbub's modules, at least
    assert result["freezes"] == {"startup": 1}
    assert result["full_collections"] == 1  # the freeze collected first, and it was measured
    assert result["measuring"] is True


def test_installed_inside_a_running_loop_the_startup_freeze_follows_the_current_callback() -> None:
    result = run_child(
        {},
        """
        async def main():
            django.setup()  # as plain uvicorn imports the application: inside the loop
            result["frozen_at_install"] = gc.get_freeze_count()
            await asyncio.sleep(0)
            result["frozen"] = gc.get_freeze_count()
            result["freezes"] = gctune.stats().freezes
        asyncio.run(main())
        result["threshold"] = gc.get_threshold()
        """,
    )
    assert result["frozen_at_install"] == 0
    assert result["frozen"] > 10_000
    assert result["freezes"] == {"startup": 1}
    assert result["threshold"] == list(gctune.DEFAULT_POLICY.thresholds or ())


def test_without_the_setting_only_pauses_are_measured() -> None:
    result = run_child(
        ...,
        """
        django.setup()
        gctune.started()
        gc.collect()
        stats = gctune.stats()
        result.update(threshold=gc.get_threshold(), before=threshold_before, frozen=gc.get_freeze_count(),
                      policy=stats.policy, collections=stats.collections, pause=stats.pause_seconds[2])
        """,
    )
    assert result["threshold"] == result["before"]
    assert result["frozen"] == 0
    assert result["policy"] is None
    assert result["collections"][2] >= 1
    assert result["pause"] > 0


def test_measuring_can_be_turned_off_and_a_bad_setting_is_one_log_line_and_no_change() -> None:
    off = run_child(
        {"measure": False, "freeze": False},
        "django.setup(); gc.collect(); s = gctune.stats(); result.update(n=s.collections, measuring=s.measuring)",
    )
    assert off["n"] == [0, 0, 0]
    assert off["measuring"] is False
    bad = run_child(
        {"thresholds": [1, 2]},
        "django.setup(); gctune.started(); "
        "result.update(t=gc.get_threshold(), b=threshold_before, f=gc.get_freeze_count())",
    )
    assert bad["t"] == bad["b"]
    assert bad["f"] == 0
    errors = [line for line in bad["stderr"].splitlines() if line.startswith("ERROR")]
    assert errors == [
        "ERROR hubbub.gctune HUBBUB_GC['thresholds'] must be three positive integers or None, got [1, 2]: "
        "garbage collection left as it is"
    ]
    assert "Traceback" not in bad["stderr"]


def test_waves_of_websockets_are_frozen_in_steps_and_closes_are_thawed() -> None:
    """A step of 3 WebSockets (not HTTP requests) freezes 0.2 s later, with the rest of its burst;
    closing 4 (and a quarter of those open) thaws."""
    result = run_child(
        {"freeze_after_connections": 3, "thaw_after_closes": 4, "delay_seconds": 0.2},
        """
        django.setup()
        from hubbub.generic.websocket import AsyncWebsocketConsumer
        from hubbub.generic.http import AsyncHttpConsumer
        from hubbub.testing import HttpCommunicator, WebsocketCommunicator

        class Echo(AsyncWebsocketConsumer):
            pass

        class Page(AsyncHttpConsumer):
            async def handle(self, body):
                await self.send_response(200, b"ok")

        sockets = []

        async def connect(count):
            for _ in range(count):
                sockets.append(WebsocketCommunicator(Echo.as_asgi(), "/"))
                assert (await sockets[-1].connect())[0]

        async def freezes_after(seconds):
            await asyncio.sleep(seconds)
            return dict(gctune.stats().freezes)

        async def until(reason, count):
            for _ in range(1000):
                if gctune.stats().freezes.get(reason) == count:
                    return dict(gctune.stats().freezes)
                await asyncio.sleep(0.01)
            raise AssertionError(gctune.stats().freezes)

        async def main():
            gctune.started()
            await connect(2)
            for _ in range(5):  # plain HTTP is not a long-lived connection: not counted
                await HttpCommunicator(Page.as_asgi(), "GET", "/").get_response()
            result["two"] = await freezes_after(0.5)
            await connect(2)  # the third crosses the step, the fourth comes in the same burst
            await until("wave", 1)
            await connect(2)  # two more than at the freeze: below the step
            result["six"] = await freezes_after(0.5)
            await connect(1)
            result["seven"] = await until("wave", 2)
            for socket in sockets[:5]:
                await socket.disconnect()
            result["closed"] = await until("thaw", 1)
            for socket in sockets[5:]:
                await socket.disconnect()

        asyncio.run(main())
        """,
    )
    assert result["two"] == {"startup": 1}
    assert result["six"] == {"startup": 1, "wave": 1}
    assert result["seven"] == {"startup": 1, "wave": 2}
    assert result["closed"] == {"startup": 1, "wave": 2, "thaw": 1}


def test_the_gc_families_are_in_the_exposition() -> None:
    samples = parse(metrics.render().decode())
    stats = gctune.stats()
    threshold = {labels["generation"]: value for labels, value in samples["hubbub_gc_threshold"]}
    assert threshold == {str(generation): value for generation, value in enumerate(stats.thresholds)}
    for name in ("hubbub_gc_collections_total", "hubbub_gc_pause_seconds_total", "hubbub_gc_pause_max_seconds"):
        assert sorted(labels["generation"] for labels, _ in samples[name]) == ["0", "1", "2"]
    assert samples["hubbub_gc_frozen_objects"] == [({}, stats.frozen_objects)]


def scrape(url: str) -> dict[str, dict[str, float]]:
    """``{sample name: {label values joined: value}}`` from a server's ``/metrics/``."""
    response = httpx.get(url + "/metrics/", timeout=10)
    assert response.status_code == 200, response.text
    samples = parse(response.text)
    return {name: {",".join(labels.values()): value for labels, value in points} for name, points in samples.items()}


async def echo(ws_url: str) -> str | bytes:
    async with websockets.connect(ws_url + "/ws/echo/") as ws:
        await ws.send("hello")
        return await asyncio.wait_for(ws.recv(), 10)


def test_uvicorn_serving_a_site_with_the_setting_freezes_at_the_first_websocket_and_exports_its_pauses() -> None:
    """Plain uvicorn imports the application before its event loop runs: the first WebSocket starts the freeze."""
    with uvicorn("tests.gc_site.asgi:application", cwd=ROOT, env={**SITE, "HUBBUB_TEST_GC": "{}"}) as site:
        assert scrape(site.url)["hubbub_gc_frozen_objects"][""] == 0
        assert asyncio.run(echo(site.ws_url)) == "hello"  # type: ignore[attr-defined]
        found = eventually_sync(lambda: (s := scrape(site.url)) and s.get("hubbub_gc_freezes_total") and s)
        assert found["hubbub_gc_freezes_total"] == {"startup": 1}
        assert found["hubbub_gc_frozen_objects"][""] > 10_000
        assert found["hubbub_gc_threshold"] == dict(zip("012", gctune.DEFAULT_POLICY.thresholds or (), strict=True))
        assert found["hubbub_gc_collections_total"]["2"] >= 1  # the freeze's collection, timed
        assert found["hubbub_gc_pause_seconds_total"]["2"] > 0
        assert found["hubbub_gc_pause_max_seconds"]["2"] > 0


def test_uvicorn_without_the_setting_measures_pauses_and_changes_nothing() -> None:
    with uvicorn("tests.gc_site.asgi:application", cwd=ROOT, env=SITE) as site:
        found = scrape(site.url)
        assert found["hubbub_gc_threshold"] == {str(g): t for g, t in enumerate(gc.get_threshold())}  # CPython's
        assert found["hubbub_gc_frozen_objects"][""] == 0
        assert "hubbub_gc_freezes_total" not in found
        assert sum(found["hubbub_gc_collections_total"].values()) > 0  # start-up's young collections


def gc_runserver(setting: str, port: int) -> Process:
    env = {"DJANGO_SETTINGS_MODULE": GC_SITE, "PYTHONPATH": str(ROOT), "HUBBUB_TEST_GC": setting}
    return Process([sys.executable, "-m", "django", "runserver", f"127.0.0.1:{port}", "--noreload"], ROOT, env, port)


def test_runserver_applies_the_setting_and_freezes_once_it_listens() -> None:
    port = free_port()
    with gc_runserver('{"thresholds": [30000, 12, 13]}', port):
        found = eventually_sync(
            lambda: (s := scrape(f"http://127.0.0.1:{port}")) and s.get("hubbub_gc_freezes_total") and s
        )
        assert found["hubbub_gc_freezes_total"] == {"startup": 1}
        assert found["hubbub_gc_threshold"] == {"0": 30000, "1": 12, "2": 13}
        assert found["hubbub_gc_frozen_objects"][""] > 10_000


def test_runserver_refuses_a_bad_setting() -> None:
    server = gc_runserver('{"freeze": "yes"}', free_port())
    server.start(wait=False)
    assert server.proc is not None
    assert server.proc.wait(60) != 0
    assert "HUBBUB_GC['freeze'] must be True or False, got 'yes'" in server.output()


def test_hubbubs_gunicorn_worker_freezes_once_it_serves() -> None:
    pytest.importorskip("uvicorn_worker", reason="gunicorn and uvicorn-worker are in the test extra")
    port = free_port()
    args = [sys.executable, "-m", "gunicorn", "tests.gc_site.asgi:application", "--bind", f"127.0.0.1:{port}"]
    args += ["--worker-class", "hubbub.gunicorn_worker.HubbubWorker", "--workers", "1", "--graceful-timeout", "5"]
    env = {**SITE, "PYTHONPATH": str(ROOT), "HUBBUB_TEST_GC": '{"thresholds": [20000, 14, 15]}'}
    with Process(args, ROOT, env, port) as server:
        url = f"http://127.0.0.1:{port}"
        found = eventually_sync(lambda: (s := scrape(url)) and s.get("hubbub_gc_freezes_total") and s)
        assert found["hubbub_gc_freezes_total"] == {"startup": 1}  # no WebSocket needed: the worker's start-up
        assert found["hubbub_gc_threshold"] == {"0": 20000, "1": 14, "2": 15}
    assert "Traceback" not in server.output(), server.output()


def test_the_settings_docs_deployment_shows_are_valid_and_the_defaults() -> None:
    from tests.docblocks import blocks

    namespace: dict[str, Any] = {}
    exec(blocks("deployment.md", "Garbage collection", "python", "HUBBUB_GC")[0], namespace)
    assert gctune.parse_policy(namespace["HUBBUB_GC"]) == gctune.DEFAULT_POLICY

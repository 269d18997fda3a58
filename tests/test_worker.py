"""Background workers: ChannelNameRouter apps fed from the layer, errors, clean shutdown, runworker."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time

import pytest
from django.core.management import CommandError, call_command

from hubbub.consumer import AsyncConsumer
from hubbub.routing import ChannelNameRouter
from hubbub.worker import Worker
from tests.django_app.consumers import ThumbnailConsumer
from tests.django_app.models import Thumbnail
from tests.servers import ROOT, Process


class Recorder(AsyncConsumer):
    """Appends each ``job.run`` message to ``log``; ``job.slow`` takes a while; ``job.fail`` raises."""

    log: list = []

    async def job_run(self, message):
        self.log.append((self.scope["channel"], message["n"], id(self)))

    async def job_slow(self, message):
        self.log.append((self.scope["channel"], "slow started", id(self)))
        await asyncio.sleep(0.3)  # the job takes a while: what the test is about
        self.log.append((self.scope["channel"], "slow done", id(self)))

    async def job_fail(self, message):
        raise RuntimeError("job failed on purpose")


async def wait_until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


@pytest.fixture
def recorder():
    Recorder.log = []
    return Recorder


async def run_worker(layer, channels, application):
    worker = Worker(application, channels, layer)
    task = asyncio.get_running_loop().create_task(worker.arun())
    await asyncio.sleep(0)
    return worker, task


async def test_each_channel_gets_one_instance_fed_in_order(fresh_layer, recorder):
    app = ChannelNameRouter({"alpha": Recorder.as_asgi(), "beta": Recorder.as_asgi()})
    worker, task = await run_worker(fresh_layer, ["alpha", "beta"], app)
    for n in range(5):
        await fresh_layer.send("alpha", {"type": "job.run", "n": n})
        await fresh_layer.send("beta", {"type": "job.run", "n": n})
    await wait_until(lambda: len(recorder.log) == 10)
    alpha = [entry for entry in recorder.log if entry[0] == "alpha"]
    assert [n for _, n, _ in alpha] == [0, 1, 2, 3, 4]
    assert len({instance for _, _, instance in alpha}) == 1
    assert len({instance for _, _, instance in recorder.log}) == 2
    worker.stop()
    await task


async def test_failing_instance_is_logged_and_replaced(fresh_layer, recorder, caplog):
    worker, task = await run_worker(fresh_layer, ["alpha"], ChannelNameRouter({"alpha": Recorder.as_asgi()}))
    with caplog.at_level(logging.ERROR, logger="hubbub.worker"):
        await fresh_layer.send("alpha", {"type": "job.run", "n": 1})
        await fresh_layer.send("alpha", {"type": "job.fail"})
        await wait_until(lambda: "job failed on purpose" in caplog.text)
        await fresh_layer.send("alpha", {"type": "job.run", "n": 2})
        await wait_until(lambda: len(recorder.log) == 2)
    assert recorder.log[0][2] != recorder.log[1][2]  # a fresh instance took over
    worker.stop()
    await task


async def test_stop_lets_work_in_hand_finish(fresh_layer, recorder):
    worker, task = await run_worker(fresh_layer, ["alpha"], ChannelNameRouter({"alpha": Recorder.as_asgi()}))
    await fresh_layer.send("alpha", {"type": "job.slow"})
    await fresh_layer.send("alpha", {"type": "job.run", "n": 7})
    await wait_until(lambda: recorder.log)  # the slow job has started
    worker.stop()
    await asyncio.wait_for(task, 5)
    assert [entry[1] for entry in recorder.log] == ["slow started", "slow done", 7]
    assert not worker.application_instances


@pytest.mark.django_db(transaction=True)
async def test_sync_worker_consumer_uses_the_orm(fresh_layer):
    worker, task = await run_worker(
        fresh_layer, ["thumbnails"], ChannelNameRouter({"thumbnails": ThumbnailConsumer.as_asgi()})
    )
    await fresh_layer.send("thumbnails", {"type": "thumbnails.make", "name": "cat.jpg"})

    async def made():
        return [t.name async for t in Thumbnail.objects.all()]

    deadline = time.monotonic() + 5
    while await made() != ["cat.jpg"] and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert await made() == ["cat.jpg"]
    worker.stop()
    await task


def test_worker_needs_a_layer():
    with pytest.raises(ValueError, match="channel layer"):
        Worker(ThumbnailConsumer.as_asgi(), ["thumbnails"], None)


def test_runworker_names_a_missing_layer():
    with pytest.raises(CommandError, match="'nope'"):
        call_command("runworker", "thumbnails", "--layer", "nope")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_runworker_shuts_down_cleanly_on_signals(sig):
    env = {"DJANGO_SETTINGS_MODULE": "tests.django_app.settings", "PYTHONPATH": str(ROOT)}
    worker = Process([sys.executable, "-m", "django", "runworker", "thumbnails", "-v", "2"], ROOT, env).start(
        wait=False
    )
    try:
        deadline = time.monotonic() + 20
        while "worker listening on thumbnails" not in worker.output():
            assert worker.proc.poll() is None, worker.output()
            assert time.monotonic() < deadline, worker.output()
            time.sleep(0.05)
        assert "in-memory channel layer lives in one process" in worker.output()
        os.kill(worker.pid, sig)
        assert worker.proc.wait(10) == 0, worker.output()
    finally:
        worker.kill()
    assert f"received {signal.Signals(sig).name}, stopping" in worker.output()
    assert "worker stopped" in worker.output()
    assert "Traceback" not in worker.output()

"""A consumer's tasks (hubbub.consumer_tasks): the first to raise ends them all, nothing is left running.

The consumer-level behaviour (a group handler's error closes the connection, StopConsumer,
``_start_soon``) is pinned in test_consumer.py and test_connection_state.py; here, the
group's own rules, driven directly.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable

import pytest

from hubbub.consumer_tasks import ConsumerTasks

WAIT = 10.0


async def _run(tasks: ConsumerTasks, body: Callable[[], Awaitable[None]]) -> list[BaseException]:
    """Run ``body`` as the host's block of ``tasks``; the errors recorded."""
    async with tasks:
        await body()
    if sys.version_info >= (3, 11):  # the group's own cancellation of the host was taken back
        assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]
    return tasks.errors


async def _until_cancelled(cancelled: asyncio.Event) -> None:
    """Wait forever; set ``cancelled`` when cancelled."""
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        cancelled.set()
        raise


async def test_a_task_that_raises_cancels_the_host_and_the_others_and_is_returned():
    """The host stops at its await, the other task is cancelled, and the block leaves with it recorded."""
    tasks = ConsumerTasks()
    other_cancelled, host_cancelled = asyncio.Event(), asyncio.Event()

    async def failing() -> None:
        raise ValueError("boom")

    tasks.start_soon(_until_cancelled, other_cancelled)
    tasks.start_soon(failing)
    errors = await asyncio.wait_for(_run(tasks, lambda: _until_cancelled(host_cancelled)), WAIT)
    assert [type(e) for e in errors] == [ValueError]
    assert host_cancelled.is_set() and other_cancelled.is_set()


async def test_the_hosts_error_cancels_the_tasks_and_waits_for_them_to_end():
    """The host's own error is recorded; the block is left only once the task beside it has ended."""
    tasks = ConsumerTasks()
    started, cleanup_done = asyncio.Event(), asyncio.Event()

    async def slow_to_stop() -> None:
        try:
            started.set()
            await asyncio.sleep(3600)
        finally:
            await asyncio.sleep(0.01)  # leaving the block waits for this
            cleanup_done.set()

    async def body() -> None:
        await started.wait()  # a task cancelled before its first step never runs its body
        raise KeyError("host")

    tasks.start_soon(slow_to_stop)
    errors = await asyncio.wait_for(_run(tasks, body), WAIT)
    assert [type(e) for e in errors] == [KeyError]
    assert cleanup_done.is_set(), "the block was left before the task beside the host had ended"


async def test_a_body_that_returns_waits_for_the_tasks_to_end_on_their_own():
    """No error: the tasks beside the host run to their end, and none are recorded."""
    tasks = ConsumerTasks()
    finished: list[str] = []

    async def worker(name: str) -> None:
        await asyncio.sleep(0.01)
        finished.append(name)

    async def body() -> None:
        tasks.start_soon(worker, "a")

    assert await asyncio.wait_for(_run(tasks, body), WAIT) == []
    assert finished == ["a"]


async def test_cancelling_the_host_from_outside_cancels_the_tasks_and_is_re_raised():
    """The server cancelling the application: the tasks beside it end first, then CancelledError."""
    tasks = ConsumerTasks()
    started, other_ended = asyncio.Event(), asyncio.Event()

    async def other() -> None:
        try:
            started.set()
            await asyncio.sleep(3600)
        finally:
            other_ended.set()

    async def body() -> None:
        await asyncio.sleep(3600)

    async def host() -> None:
        tasks.start_soon(other)
        await _run(tasks, body)

    running = asyncio.ensure_future(host())
    await asyncio.wait_for(started.wait(), WAIT)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(running, WAIT)
    assert other_ended.is_set()


async def test_a_task_started_while_ending_for_an_error_is_cancelled_before_it_runs():
    """Once an error ends the group, what is started in its cleanup never runs its body."""
    tasks = ConsumerTasks()
    ran: list[str] = []

    async def late() -> None:
        ran.append("late")

    async def body() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            tasks.start_soon(late)

    async def failing() -> None:
        raise ValueError("boom")

    tasks.start_soon(failing)
    errors = await asyncio.wait_for(_run(tasks, body), WAIT)
    assert [type(e) for e in errors] == [ValueError] and ran == []


async def test_errors_raised_while_cancelling_are_all_returned_in_order():
    """A task whose cleanup raises adds its error after the one that ended the group."""
    tasks = ConsumerTasks()

    async def bad_cleanup() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            raise RuntimeError("cleanup")  # noqa: B012

    async def failing() -> None:
        await asyncio.sleep(0)
        raise ValueError("first")

    async def body() -> None:
        await asyncio.sleep(3600)

    tasks.start_soon(bad_cleanup)
    tasks.start_soon(failing)
    errors = await asyncio.wait_for(_run(tasks, body), WAIT)
    assert [str(e) for e in errors] == ["first", "cleanup"]


async def test_cancelled_from_outside_while_ending_for_an_error_still_waits_for_its_tasks():
    """The server cancelling the host during the wait for a slow cleanup: the cleanup still ends first."""
    tasks = ConsumerTasks()
    cleaning, ended = asyncio.Event(), asyncio.Event()

    async def slow_cleanup() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            cleaning.set()
            try:
                await asyncio.sleep(0.05)  # the host is cancelled meanwhile (and so this task, again)
            finally:
                ended.set()

    async def failing() -> None:
        raise ValueError("boom")

    async def host() -> None:
        async with tasks:
            tasks.start_soon(slow_cleanup)
            tasks.start_soon(failing)
            await asyncio.sleep(3600)

    running = asyncio.ensure_future(host())
    await asyncio.wait_for(cleaning.wait(), WAIT)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(running, WAIT)
    assert ended.is_set(), "a task beside the host was still running when it left"

"""Run one load job given as JSON on the command line; print its result as one JSON line."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import uvloop

from ..procs import raise_nofile_limit
from . import broadcast, echo, idle

JOBS: dict[str, Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]] = {
    "echo": echo.run,
    "broadcast": broadcast.run,
    "idle": idle.run,
}


async def _bounded(job: dict[str, Any]) -> dict[str, Any]:
    return await asyncio.wait_for(JOBS[job["kind"]](job), job["timeout"])


def main() -> None:
    job = json.loads(sys.argv[1])
    raise_nofile_limit()
    result = uvloop.run(_bounded(job))
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()

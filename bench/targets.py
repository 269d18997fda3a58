"""What the scenarios measure: an application, the server it runs on, and its channel layer.

A ``Target`` is a value; ``serve(target)`` starts its server process(es) pinned to
the server core and yields the running ``Deployment`` (ports and PIDs the load
generator needs). Every server gets the same options: uvicorn's defaults (uvloop,
httptools, websockets-sansio), no access log, no lifespan. Granian (``server="granian"``)
runs one worker with its defaults and no lifespan (``--interface asginl``); its worker is a
child of the process started, so a deployment's PIDs include the children. On uvicorn,
hubbub runs with its own WebSocket protocol class (``--ws hubbub.uvicorn_ws:WebSocketProtocol``,
what hubbub's runserver and gunicorn worker use) once that module exists.
``BENCH_WS=<protocol>`` gives the bare and hubbub targets' uvicorn that ``--ws`` instead (the bare
app on hubbub's protocol, say); Channels keeps uvicorn's default. hubbub targets run with the
documented ``HUBBUB_GC = {}`` (``BENCH_HUBBUB_GC=1`` for the site); ``tuned_gc=False`` leaves
CPython's collector as it comes, for the before/after rows. The bare app always keeps
CPython's defaults: it is the framework-free reference.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import psutil

from tests.servers import granian_command, uvicorn_command

from .procs import ROOT, SERVER_CORE, Child, free_port, pinned


@dataclass(frozen=True)
class Target:
    """One thing to measure: ``app`` is ``bare``, ``hubbub`` or ``channels``.

    ``tuned_gc`` only concerns hubbub: ``HUBBUB_GC = {}`` (True) or CPython's defaults.
    """

    app: str
    server: str = "uvicorn"
    layer: str = "inmemory"
    processes: int = 1
    tuned_gc: bool = True

    @property
    def name(self) -> str:
        parts = [self.app]
        if self.app == "channels" or self.server != "uvicorn":
            parts.append(self.server)
        if self.app != "bare":
            parts.append(self.layer)
        name = " ".join(parts)
        name = f"{name} x{self.processes}" if self.processes > 1 else name
        return name if self.tuned_gc or self.app != "hubbub" else f"{name}, CPython GC defaults"

    @property
    def needs_redis(self) -> bool:
        return self.layer in ("redis", "pubsub") and self.app != "bare"


BARE = Target("bare")
HUBBUB = Target("hubbub")
CHANNELS_UVICORN = Target("channels")
CHANNELS_DAPHNE = Target("channels", server="daphne")
BARE_GRANIAN = Target("bare", server="granian")
HUBBUB_GRANIAN = Target("hubbub", server="granian")


def installed(target: Target) -> bool:
    """Whether ``target``'s server is installed here (the bench's virtualenv may predate Granian)."""
    return importlib.util.find_spec(target.server) is not None


@dataclass
class Deployment:
    """A running target: one port and PID per server process, plus the Redis PID if any."""

    target: Target
    ports: list[int]
    pids: list[int]
    redis_pid: int | None = None


def _command(target: Target, port: int) -> list[str]:
    app = "bench.bare:application" if target.app == "bare" else "bench.site.asgi:application"
    if target.server == "daphne":
        return [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "-v", "0", app]
    if target.server == "granian":
        return granian_command(app, port, "asginl", ["--backlog", "4096"])
    ws = ["--ws", HUBBUB_WS_PROTOCOL] if target.app == "hubbub" and hubbub_ws_protocol_available() else []
    if os.environ.get("BENCH_WS") and target.app != "channels":
        ws = ["--ws", os.environ["BENCH_WS"]]
    return uvicorn_command(app, port, ["--no-access-log", "--lifespan", "off", "--backlog", "4096", *ws])


#: hubbub's uvicorn WebSocket protocol (prepared frames written once per fan-out), by import path.
HUBBUB_WS_PROTOCOL = "hubbub.uvicorn_ws:WebSocketProtocol"


def hubbub_ws_protocol_available() -> bool:
    """Whether ``hubbub.uvicorn_ws`` exists yet (another engineer is writing it)."""
    try:
        return importlib.util.find_spec("hubbub.uvicorn_ws") is not None
    except ImportError:
        return False


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (Granian serves from a worker process it spawns)."""
    process = psutil.Process(pid)
    return [pid, *(child.pid for child in process.children(recursive=True))]


def environment(
    target: Target, redis_url: str | None, prefix: str, cluster_urls: list[str] | None = None
) -> dict[str, str]:
    """The environment variables that select ``target``'s framework and layer in the site."""
    path = [str(ROOT), os.environ.get("PYTHONPATH", "")]
    env = {
        "BENCH_FRAMEWORK": target.app if target.app != "bare" else "hubbub",
        "BENCH_LAYER": target.layer,
        "BENCH_PREFIX": prefix,
        "BENCH_HUBBUB_GC": "1" if target.tuned_gc else "0",
        "PYTHONPATH": os.pathsep.join(filter(None, path)),
    }
    if redis_url:
        env["BENCH_REDIS_URL"] = redis_url
    if cluster_urls:
        env["BENCH_REDIS_CLUSTER"] = ",".join(cluster_urls)
    return env


@contextlib.contextmanager
def serve(target: Target, redis: Child | None = None, cluster_urls: list[str] | None = None) -> Iterator[Deployment]:
    """Start ``target``'s server process(es) on free ports and stop them on exit.

    Redis targets get a key prefix of their own, so runs never see each other's groups.
    The ``redis-cluster`` layer uses the cluster at ``cluster_urls`` (its CPU is not measured).
    """
    if target.layer == "redis-cluster":
        if not cluster_urls:
            raise RuntimeError(f"{target.name} needs a Redis Cluster and there is none")
        redis = None
    elif target.needs_redis and redis is None:
        raise RuntimeError(f"{target.name} needs Redis and there is none")
    redis_url = f"redis://127.0.0.1:{redis.port}/0" if redis is not None and target.needs_redis else None
    env = environment(
        target, redis_url, "bench" + uuid.uuid4().hex[:10], cluster_urls if target.layer == "redis-cluster" else None
    )
    with contextlib.ExitStack() as stack:
        children = []
        for _ in range(target.processes):
            port = free_port()
            children.append(stack.enter_context(Child(pinned(_command(target, port), SERVER_CORE), env=env, port=port)))
        yield Deployment(
            target,
            [c.port for c in children],
            [pid for c in children for pid in _tree(c.pid)],
            redis.pid if redis_url and redis is not None else None,
        )

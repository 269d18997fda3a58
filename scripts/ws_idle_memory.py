"""Where an idle WebSocket's memory goes: tracemalloc and RSS per connection in a uvicorn process.

``python scripts/ws_idle_memory.py [--ws PROTOCOL] [--app bare|hubbub] [-n 2000] [--top 25] [--no-trace]``

Starts a uvicorn server (the bench site's group consumer, or the bare ASGI app) with
tracemalloc on, opens 50 warm-up WebSockets, takes a snapshot and the RSS, opens ``-n``
more that stay idle, takes both again, and prints the difference per connection: RSS,
traced bytes, and the allocation sites holding the most (file:line of the innermost frame).
All on 127.0.0.1; the server is stopped by its PID at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WARM_UP = 50
APPS = {"bare": ("bench.bare:application", "ws/group"), "hubbub": ("bench.site.asgi:application", "ws/group")}


def serve(app: str, ws: str, port: int, snapshot_dir: str, trace: bool) -> None:
    """The server process: uvicorn with tracemalloc; SIGUSR1 writes a snapshot to ``snapshot_dir``."""
    import uvicorn

    if trace:
        tracemalloc.start(1)
    counter = [0]

    def dump(*_: object) -> None:
        counter[0] += 1
        path = Path(snapshot_dir) / f"{counter[0]}.pickle"
        snapshot = tracemalloc.take_snapshot()
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(pickle.dumps(snapshot))
        tmp.rename(path)

    signal.signal(signal.SIGUSR1, dump)
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        ws=ws,
        ws_max_size=1024 * 1024,
        ws_ping_interval=20.0,
        ws_ping_timeout=30.0,
        ws_per_message_deflate=False,
        lifespan="off",
        log_level="warning",
        access_log=False,
    )


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def snapshot(pid: int, directory: Path, number: int) -> tracemalloc.Snapshot:
    os.kill(pid, signal.SIGUSR1)
    path = directory / f"{number}.pickle"
    deadline = time.monotonic() + 60
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError("no snapshot from the server")
        time.sleep(0.05)
    return pickle.loads(path.read_bytes())


async def open_many(url: str, count: int) -> list[object]:
    import websockets

    connections = []
    for start in range(0, count, 100):
        batch = [
            websockets.connect(url, compression=None, ping_interval=None) for _ in range(start, min(count, start + 100))
        ]
        connections += await asyncio.gather(*batch)
    return connections


async def measure(args: argparse.Namespace) -> None:
    from tests.servers import free_port, wait_for_port

    app, path = APPS[args.app]
    port = free_port()
    directory = Path(tempfile.mkdtemp(prefix="ws-idle-memory-"))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BENCH_FRAMEWORK": "hubbub", "BENCH_LAYER": "inmemory"}
    command = [sys.executable, __file__, "--serve", app, "--ws", args.ws, "--port", str(port), "--dir", str(directory)]
    command += ["--no-trace"] if args.no_trace else []
    server = subprocess.Popen(command, env=env, cwd=ROOT)
    try:
        wait_for_port(port, proc=server)
        url = f"ws://127.0.0.1:{port}/{path}"
        warm = await open_many(url, WARM_UP)
        await asyncio.sleep(1)
        before_rss = rss(server.pid)
        if args.no_trace:
            idle = await open_many(url, args.n)
            await asyncio.sleep(2)
            print(f"{args.app} on --ws {args.ws}: {(rss(server.pid) - before_rss) / len(idle) / 1024:.1f} KiB RSS/conn")
            return
        before = snapshot(server.pid, directory, 1)
        idle = await open_many(url, args.n)
        await asyncio.sleep(2)
        after_rss, after = rss(server.pid), snapshot(server.pid, directory, 2)
        n = len(idle)
        stats = after.compare_to(before, "lineno")
        traced = sum(s.size_diff for s in stats)
        print(f"{args.app} on --ws {args.ws}, {n} idle connections")
        print(f"RSS per connection: {(after_rss - before_rss) / n / 1024:.1f} KiB (under tracemalloc)")
        print(f"traced per connection: {traced / n:.0f} B; top sites (B/conn, blocks/conn):")
        for stat in stats[: args.top]:
            frame = stat.traceback[0]
            name = frame.filename.split("site-packages/")[-1].replace(str(ROOT) + "/", "")
            print(f"  {stat.size_diff / n:8.0f} {stat.count_diff / n:5.1f}  {name}:{frame.lineno}")
        for connection in idle + warm:
            await connection.close()  # type: ignore[attr-defined]
    finally:
        server.terminate()
        server.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ws", default="hubbub.uvicorn_ws:WebSocketProtocol")
    parser.add_argument("--app", choices=sorted(APPS), default="hubbub")
    parser.add_argument("-n", type=int, default=2000)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--no-trace", action="store_true", help="RSS only, without tracemalloc's overhead")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.ws, args.port, args.dir, not args.no_trace)
    else:
        sys.path.insert(0, str(ROOT))
        asyncio.run(measure(args))


if __name__ == "__main__":
    main()

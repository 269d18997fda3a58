"""Real servers for tests: uvicorn or Granian serving an ASGI app, and private redis-servers.

Every process started here listens on 127.0.0.1 only, on a free port, and is
stopped by its own PID when the ``with`` block ends (or the test fails).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 20.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout} s")


class Process:
    """A child process with its output captured to a file, stopped by PID on exit."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str] | None = None, port: int = 0):
        self.args, self.cwd, self.port = args, cwd, port
        self.env = {**os.environ, **(env or {})}
        # The server's output for its whole life, past this method (a ``with`` block cannot span it).
        self.log_file = tempfile.NamedTemporaryFile(prefix="hubbub-server-", suffix=".log", delete=False)  # noqa: SIM115
        self.proc: subprocess.Popen | None = None

    def start(self, wait: bool = True) -> Process:
        self.proc = subprocess.Popen(
            self.args,
            cwd=self.cwd,
            env=self.env,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        if wait and self.port:
            try:
                wait_for_port(self.port, proc=self.proc)
            except Exception:
                self.stop()
                raise RuntimeError(f"{self.args} did not start:\n{self.output()}") from None
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def output(self) -> str:
        self.log_file.flush()
        return Path(self.log_file.name).read_text(errors="replace")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def __enter__(self) -> Process:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def uvicorn_command(app: str, port: int, extra: list[str] | None = None) -> list[str]:
    """The command line of a uvicorn process serving ``app`` on 127.0.0.1:``port`` (the bench's too)."""
    host = ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    return [sys.executable, "-m", "uvicorn", app, *host, *(extra or [])]


def granian_command(app: str, port: int, interface: str, extra: list[str] | None = None) -> list[str]:
    """The command line of a Granian process (one worker) serving ``app`` on 127.0.0.1:``port`` (the bench's too)."""
    host = ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    return [sys.executable, "-m", "granian", "--interface", interface, *host, *(extra or []), app]


def uvicorn(
    app: str = "demo.asgi:application",
    *,
    env: dict[str, str] | None = None,
    port: int | None = None,
    cwd: Path = EXAMPLES,
    extra: list[str] | None = None,
) -> Process:
    """A uvicorn process serving ``app`` (by default the example site) on 127.0.0.1."""
    port = port or free_port()
    args = uvicorn_command(app, port, extra)
    env = {"PYTHONPATH": os.pathsep.join([str(ROOT), str(cwd)]), **(env or {})}
    process = Process(args, cwd, env, port)
    process.url = f"http://127.0.0.1:{port}"  # type: ignore[attr-defined]
    process.ws_url = f"ws://127.0.0.1:{port}"  # type: ignore[attr-defined]
    return process


def granian(
    app: str,
    *,
    env: dict[str, str] | None = None,
    port: int | None = None,
    cwd: Path = ROOT,
    extra: list[str] | None = None,
) -> Process:
    """A Granian process (ASGI interface, one worker) serving ``app`` on 127.0.0.1."""
    port = port or free_port()
    args = granian_command(app, port, "asgi", extra)
    env = {"PYTHONPATH": os.pathsep.join([str(ROOT), str(cwd)]), **(env or {})}
    process = Process(args, cwd, env, port)
    process.url = f"http://127.0.0.1:{port}"  # type: ignore[attr-defined]
    process.ws_url = f"ws://127.0.0.1:{port}"  # type: ignore[attr-defined]
    return process


def redis_server(port: int | None = None, extra: list[str] | None = None) -> Process:
    """A private, throw-away redis-server (never the shared one on 6379)."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise FileNotFoundError("redis-server is not installed")
    port = port or free_port()
    workdir = Path(tempfile.mkdtemp(prefix="hubbub-redis-"))
    args = [
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(workdir),
        *(extra or []),
    ]
    process = Process(args, workdir, port=port)
    process.url = f"redis://127.0.0.1:{port}/0"  # type: ignore[attr-defined]
    return process

"""Child processes for the benchmarks: servers, a private Redis, and CPU pinning.

Every process started here listens on 127.0.0.1 only, runs in its own session,
and is stopped by its PID (never by name) when its ``with`` block ends.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from tests.servers import free_port, wait_for_port  # the test suite's, run from the repository root

ROOT = Path(__file__).resolve().parent.parent

#: The core servers run on, and the one load generators run on (2-core machine).
SERVER_CORE = 0
CLIENT_CORE = 1


def raise_nofile_limit() -> None:
    """Raise this process's open-file limit to its hard limit (10,000 sockets need it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else 65536, hard))


def pinned(args: Sequence[str], core: int) -> list[str]:
    """``args`` run on one CPU core with ``taskset`` when there are at least two cores."""
    if shutil.which("taskset") and (os.cpu_count() or 1) >= 2:
        return ["taskset", "-c", str(core), *args]
    return list(args)


class Child:
    """A child process with its output in a temporary log, stopped by PID on exit."""

    def __init__(self, args: Sequence[str], env: dict[str, str] | None = None, port: int = 0, cwd: Path = ROOT):
        self.args = list(args)
        self.env = {**os.environ, **(env or {})}
        self.port = port
        self.cwd = cwd
        # The child's stdout for its whole life: open past this method, closed and removed by __exit__.
        self.log = tempfile.NamedTemporaryFile(prefix="hubbub-bench-", suffix=".log", delete=False)  # noqa: SIM115
        self.proc: subprocess.Popen | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None, "not started"
        return self.proc.pid

    def start(self, timeout: float = 30.0) -> Child:
        self.proc = subprocess.Popen(
            self.args,
            cwd=self.cwd,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=raise_nofile_limit,
        )
        if self.port:
            try:
                wait_for_port(self.port, timeout, self.proc)
            except Exception as exc:
                self.stop()
                raise RuntimeError(f"{' '.join(self.args)} did not start ({exc}):\n{self.output()[-3000:]}") from exc
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if it has not gone after ``timeout`` seconds."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def output(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text(errors="replace")

    def __enter__(self) -> Child:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self.log.close()
        Path(self.log.name).unlink(missing_ok=True)


def redis_server() -> Child | None:
    """A private redis-server on a free port, pinned to the server core; ``None`` if not installed."""
    binary = shutil.which("redis-server")
    if binary is None:
        return None
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="hubbub-bench-redis-")
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
        workdir,
        "--maxclients",
        "20000",
    ]
    return Child(pinned(args, SERVER_CORE), port=port, cwd=Path(workdir))

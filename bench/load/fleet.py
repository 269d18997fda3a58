"""``python -m bench.load.fleet '<job>'``: one load-generator process of the scale scenario.

Theory of operation. A fleet holds its share of the group's sockets (at most
``MAX_SOCKETS``: the hard open-file limit here is 20,000 per process) and talks to
the scenario over its stdin and stdout, one JSON object per line:

1. It connects ``clients`` listening WebSockets (``rawws``) to the servers' ports
   round-robin, from the source addresses it is given (one address has only ~28,000
   ephemeral ports), in waves of ``WAVE`` with ``concurrency`` handshakes in flight,
   and prints ``{"event": "ready", ...}`` with how many connected and how many failed.
2. Every payload starts with the broadcast's sequence number. Each client checks that
   it sees 0, 1, 2... (a gap is a lost delivery); the fleet counts receipts per
   sequence number and notes the clock (``time.monotonic_ns``: CLOCK_MONOTONIC, one
   clock for every process on the machine) at each. When all its clients have one
   broadcast, it prints ``{"event": "done", "seq": s, "last_ns": t}``: the scenario
   takes the latest ``last_ns`` over the fleets minus its own publish time.
3. Commands on stdin: ``start`` (begin the CPU window), ``status <seq>`` (receipts of
   a broadcast that did not complete), ``finish <last seq>`` (losses, and this
   process's CPU per received frame since ``start``, printed as ``{"event": "result"}``).
   End of input (or the job's ``timeout``) resets every connection and ends the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
import sys
import time
from typing import Any

import uvloop

from ..procs import raise_nofile_limit
from .rawws import ListeningClient, handshake

#: Sockets one fleet may hold: the hard open-file limit (20,000) less room for the rest.
MAX_SOCKETS = 19000
#: Connections opened per wave; the fleet reports progress and checks for a broken server between waves.
WAVE = 1000
#: Seconds one connection (TCP and handshake) may take.
HANDSHAKE_TIMEOUT = 20.0


def _emit(event: str, **fields: Any) -> None:
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


def _cpu_seconds() -> tuple[float, float]:
    """(user, system) CPU seconds of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


class Fleet:
    def __init__(self, job: dict[str, Any]) -> None:
        self.job = job
        self.clients: list[ListeningClient] = []
        self.failed = 0
        slots = job["max_seq"] + 1
        self.receipts = [0] * slots
        self.last_ns = [0] * slots
        self.frames = 0
        self.cpu_at_start = (0.0, 0.0)
        self.frames_at_start = 0

    def on_payload(self, client: ListeningClient, payload: bytes) -> None:
        now = time.monotonic_ns()
        self.frames += 1
        seq = int(payload[: payload.index(b" ")])
        if seq != client.expected:
            if seq > client.expected:
                client.missed += seq - client.expected
            else:  # a repeat, or out of order: counted as a gap already, not counted twice
                return
        client.expected = seq + 1
        if seq < len(self.receipts):
            count = self.receipts[seq] = self.receipts[seq] + 1
            self.last_ns[seq] = now
            if count == len(self.clients):
                _emit("done", seq=seq, last_ns=now)

    async def connect(self) -> None:
        """Open the job's clients in waves; connections that fail are counted, not retried."""
        job = self.job
        ports, sources = job["ports"], job["sources"]
        gate = asyncio.Semaphore(job["concurrency"])
        loop = asyncio.get_running_loop()
        requests = {port: handshake(port, job["path"]) for port in ports}

        async def one(index: int) -> ListeningClient | None:
            port = ports[(job["offset"] + index) % len(ports)]
            source = sources[index % len(sources)]
            async with gate:
                try:
                    _, client = await asyncio.wait_for(
                        loop.create_connection(
                            lambda: ListeningClient(requests[port], self.on_payload),
                            "127.0.0.1",
                            port,
                            local_addr=(source, 0),
                        ),
                        HANDSHAKE_TIMEOUT,
                    )
                    await asyncio.wait_for(client.opened, HANDSHAKE_TIMEOUT)
                except (OSError, asyncio.TimeoutError):
                    self.failed += 1
                    return None
                return client

        started = time.monotonic()
        for first in range(0, job["clients"], WAVE):
            wave = range(first, min(first + WAVE, job["clients"]))
            results = await asyncio.gather(*(one(i) for i in wave))
            self.clients += [c for c in results if c is not None]
            if self.failed > WAVE and self.failed > len(self.clients):  # the server is not taking them
                self.failed += job["clients"] - wave.stop
                break
        _emit("ready", clients=len(self.clients), failed=self.failed, seconds=time.monotonic() - started)

    def status(self, seq: int) -> None:
        _emit("status", seq=seq, receipts=self.receipts[seq], last_ns=self.last_ns[seq])

    def start(self) -> None:
        self.cpu_at_start, self.frames_at_start = _cpu_seconds(), self.frames

    def finish(self, last: int) -> None:
        user, system = (now - then for now, then in zip(_cpu_seconds(), self.cpu_at_start, strict=True))
        cpu = user + system
        frames = self.frames - self.frames_at_start
        lost = sum(c.missed + max(0, last + 1 - c.expected) for c in self.clients)
        _emit(
            "result",
            clients=len(self.clients),
            closed=sum(c.closed for c in self.clients),
            lost=lost,
            frames=frames,
            cpu_seconds=cpu,
            system_share=system / cpu if cpu else None,
            cpu_us_per_frame=cpu * 1e6 / frames if frames else None,
            max_rss_kib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        )

    async def commands(self) -> None:
        """Obey stdin's commands until it ends."""
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while line := await reader.readline():
            command, *args = line.decode().split()
            if command == "start":
                self.start()
            elif command == "status":
                self.status(int(args[0]))
            elif command == "finish":
                self.finish(int(args[0]))

    def close(self) -> None:
        for client in self.clients:
            client.abort()


async def run(job: dict[str, Any]) -> None:
    if job["clients"] > MAX_SOCKETS:
        raise ValueError(f"a fleet holds at most {MAX_SOCKETS} sockets, not {job['clients']}")
    fleet = Fleet(job)
    try:
        await fleet.connect()
        await fleet.commands()
    finally:
        fleet.close()


def main() -> None:
    job = json.loads(sys.argv[1])
    raise_nofile_limit()
    with contextlib.suppress(asyncio.TimeoutError, KeyboardInterrupt):
        uvloop.run(asyncio.wait_for(run(job), job["timeout"]))


if __name__ == "__main__":
    main()

"""A real, private Redis Cluster for tests: three masters and three replicas on 127.0.0.1.

``redis_cluster()`` starts six ``redis-server --cluster-enabled yes`` processes on free
ports (each in its own temporary directory, no persistence, ``cluster-node-timeout``
1000 ms so a failover takes a second or two), joins them with ``redis-cli --cluster
create ... --cluster-replicas 1``, waits until every node reports ``cluster_state:ok``
and stops every process by its PID when the ``with`` block ends.

The ``redis_cluster_urls`` fixture in ``conftest`` shares one such cluster with the
whole session; tests that kill or fail over nodes start their own.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .servers import Process

NODE_TIMEOUT_MS = 1000
IN_CI = os.environ.get("CI", "").lower() == "true"


def cluster_binaries() -> str | None:
    """Why a cluster cannot start here (``None`` when it can)."""
    missing = [name for name in ("redis-server", "redis-cli") if shutil.which(name) is None]
    if missing:
        return f"Redis Cluster tests need {' and '.join(missing)} (Debian package redis-server)"
    return None


def require_cluster_binaries() -> None:
    """Skip loudly where redis-server/redis-cli are missing; fail under CI=true."""
    import pytest  # here: the benchmarks start clusters too, without pytest

    reason = cluster_binaries()
    if reason is not None:
        if IN_CI:
            pytest.fail(f"CI=true: {reason}")
        pytest.skip(reason)


def command(port: int, *args: str, timeout: float = 5.0) -> str:
    """One command to a node with redis-cli; its output as text."""
    done = subprocess.run(
        ["redis-cli", "-h", "127.0.0.1", "-p", str(port), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return done.stdout.strip()


def cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free too; at most 55535, as Redis requires."""
    for _ in range(200):
        port = random.randint(20000, 45000)
        try:
            with socket.socket() as one, socket.socket() as bus:
                one.bind(("127.0.0.1", port))
                bus.bind(("127.0.0.1", port + 10000))
            return port
        except OSError:
            continue
    raise RuntimeError("no free port pair for a cluster node")


class Node:
    """One cluster node process."""

    def __init__(self, port: int, process: Process, workdir: Path):
        self.port, self.process, self.workdir = port, process, workdir

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.process.proc is not None and self.process.proc.poll() is None

    def role(self) -> str:
        """``master`` or ``slave`` as the node itself reports it."""
        for line in command(self.port, "ROLE").splitlines()[:1]:
            return line.strip()
        return ""

    def node_id(self) -> str:
        return command(self.port, "CLUSTER", "MYID")


class Cluster:
    """A running cluster of ``Node``s; the helpers below wait on conditions, never fixed sleeps."""

    def __init__(self, nodes: list[Node]):
        self.nodes = nodes

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    def live(self) -> list[Node]:
        return [node for node in self.nodes if node.alive()]

    def wait_ok(self, timeout: float = 30.0) -> None:
        """Until every live node says ``cluster_state:ok`` and agrees on who masters each slot."""
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            live = self.live()
            states = [command(node.port, "CLUSTER", "INFO") for node in live]
            if all("cluster_state:ok" in state for state in states):
                maps = {self._slot_owners(node.port) for node in live}
                if len(maps) == 1:
                    return
                last = f"nodes disagree on the slot map: {maps}"
            else:
                last = "; ".join(state.splitlines()[0] if state else "no answer" for state in states)
            time.sleep(0.1)
        raise TimeoutError(f"cluster not ok after {timeout} s: {last}")

    @staticmethod
    def _slot_owners(port: int) -> str:
        lines = command(port, "CLUSTER", "NODES").splitlines()
        owners = sorted(
            " ".join([fields[1].split("@")[0], *fields[8:]])
            for fields in (line.split() for line in lines)
            if "master" in fields[2] and "fail" not in fields[2] and len(fields) > 8
        )
        return "|".join(owners)

    def slot_of(self, key: str) -> int:
        return int(command(self.live()[0].port, "CLUSTER", "KEYSLOT", key))

    def master_of(self, slot: int) -> Node:
        """The live node that currently serves ``slot`` as master."""
        for node in self.live():
            for line in command(node.port, "CLUSTER", "NODES").splitlines():
                fields = line.split()
                if "myself" not in fields[2] or "master" not in fields[2]:
                    continue
                for spec in fields[8:]:
                    if spec.startswith("["):
                        continue
                    low, _, high = spec.partition("-")
                    if int(low) <= slot <= int(high or low):
                        return node
        raise LookupError(f"no live master serves slot {slot}")

    def replica_of(self, master: Node) -> Node:
        master_id = master.node_id()
        for node in self.live():
            if node is not master and f"slave {master_id}" in " ".join(
                line for line in command(node.port, "CLUSTER", "NODES").splitlines() if "myself" in line
            ):
                return node
        raise LookupError(f"no live replica of node {master.port}")

    def kill(self, node: Node) -> None:
        node.process.kill()

    def wait_master(self, node: Node, timeout: float = 30.0) -> None:
        """Until ``node`` reports itself a master and the cluster is ok again."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and node.role() != "master":
            time.sleep(0.05)
        if node.role() != "master":
            raise TimeoutError(f"node {node.port} was not promoted within {timeout} s")
        self.wait_ok(max(1.0, deadline - time.monotonic()))

    def move_slot(self, slot: int, target: Node, batch: int = 1, pause: float = 0.05) -> int:
        """Migrate one slot to ``target`` as ``redis-cli --cluster reshard`` does, a few keys at a time.

        (``reshard`` itself picks which slots to move; this moves exactly ``slot``.) The
        slot stays half-migrated for ``pause`` seconds between batches, so clients see
        ``ASK`` and ``TRYAGAIN`` replies. Returns how many keys were moved.
        """
        source = self.master_of(slot)
        if source is target:
            raise ValueError(f"slot {slot} is already on {target.port}")
        source_id, target_id = source.node_id(), target.node_id()
        assert command(target.port, "CLUSTER", "SETSLOT", str(slot), "IMPORTING", source_id) == "OK"
        assert command(source.port, "CLUSTER", "SETSLOT", str(slot), "MIGRATING", target_id) == "OK"
        moved = 0
        while True:
            keys = command(source.port, "CLUSTER", "GETKEYSINSLOT", str(slot), str(batch)).split()
            if not keys:
                break
            reply = command(source.port, "MIGRATE", "127.0.0.1", str(target.port), "", "0", "5000", "KEYS", *keys)
            if reply not in ("OK", "NOKEY"):
                raise RuntimeError(f"MIGRATE of {keys} failed: {reply}")
            moved += len(keys)
            time.sleep(pause)
        for node in [target, source, *(n for n in self.live() if n not in (source, target))]:
            command(node.port, "CLUSTER", "SETSLOT", str(slot), "NODE", target_id)
        return moved

    def failover(self, replica: Node) -> None:
        """A planned failover: ``CLUSTER FAILOVER`` on ``replica``, waited for."""
        old = self._master_of_replica(replica)
        assert command(replica.port, "CLUSTER", "FAILOVER") == "OK"
        self.wait_master(replica)
        deadline = time.monotonic() + 30
        while old.role() != "slave":  # the old master has handed its slots over
            if time.monotonic() > deadline:
                raise TimeoutError(f"node {old.port} did not become a replica")
            time.sleep(0.05)

    def _master_of_replica(self, replica: Node) -> Node:
        master_id = next(
            line.split()[3] for line in command(replica.port, "CLUSTER", "NODES").splitlines() if "myself" in line
        )
        return next(node for node in self.live() if node.node_id() == master_id)

    def masters(self) -> list[Node]:
        return [node for node in self.live() if node.role() == "master"]

    def stop(self) -> None:
        for node in self.nodes:
            node.process.stop()
            shutil.rmtree(node.workdir, ignore_errors=True)


def _start_node(port: int, password: str | None, pin: Callable[[list[str]], list[str]] | None) -> Node:
    workdir = Path(tempfile.mkdtemp(prefix="hubbub-cluster-"))
    args = [
        shutil.which("redis-server") or "redis-server",
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        str(workdir / "nodes.conf"),
        "--cluster-node-timeout",
        str(NODE_TIMEOUT_MS),
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(workdir),
        "--daemonize",
        "no",
        "--protected-mode",
        "no",
        *(["--requirepass", password, "--masterauth", password] if password else []),
    ]
    return Node(port, Process(pin(args) if pin else args, workdir, port=port), workdir)


@contextmanager
def redis_cluster(
    masters: int = 3,
    password: str | None = None,
    pin: Callable[[list[str]], list[str]] | None = None,
) -> Iterator[Cluster]:
    """A fresh cluster of ``masters`` masters with one replica each, stopped by PID at the end.

    With ``password`` every node requires it (redis-cli here reads it from REDISCLI_AUTH);
    ``pin`` wraps each node's command line (the benchmarks pin the nodes to their core).
    """
    if cluster_binaries() is not None:
        require_cluster_binaries()  # skips (or fails under CI=true)
    old_auth = os.environ.get("REDISCLI_AUTH")
    if password:
        os.environ["REDISCLI_AUTH"] = password
    nodes: list[Node] = []
    cluster = Cluster(nodes)
    try:
        for _ in range(masters * 2):
            node = _start_node(cluster_port(), password, pin)
            nodes.append(node)
            node.process.start()
        done = subprocess.run(
            [
                "redis-cli",
                "--cluster",
                "create",
                *(f"127.0.0.1:{node.port}" for node in nodes),
                "--cluster-replicas",
                "1",
                "--cluster-yes",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if done.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed:\n{done.stdout}\n{done.stderr}")
        cluster.wait_ok()
        _wait_replicas(cluster)
        yield cluster
    finally:
        cluster.stop()
        if password:
            if old_auth is None:
                os.environ.pop("REDISCLI_AUTH", None)
            else:
                os.environ["REDISCLI_AUTH"] = old_auth


def _wait_replicas(cluster: Cluster, timeout: float = 30.0) -> None:
    """Until every replica has finished its first sync (so a failover can happen)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        infos: dict[int, str] = {node.port: command(node.port, "INFO", "replication") for node in cluster.nodes}
        replicas = [info for info in infos.values() if "role:slave" in info]
        if len(replicas) * 2 == len(cluster.nodes) and all("master_link_status:up" in info for info in replicas):
            return
        time.sleep(0.1)
    raise TimeoutError("the replicas did not finish syncing")

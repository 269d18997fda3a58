"""hubbub served by Granian (a second ASGI server), through a real Granian process and real clients.

Accept, echo through a group, messages between two clients, a clean close and an abrupt
one (the client's socket reset, also while the server is stalled writing to it): every
time the consumer's ``disconnect()`` runs and the room's group is left. On SIGTERM Granian
drops open WebSockets without a close frame: the clients see an abnormal closure (1006).
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import struct
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from tests.e2e.deployment import command
from tests.e2e.test_backpressure import stalled_client
from tests.servers import ROOT, Process, free_port, granian

pytestmark = pytest.mark.timeout(120)

APP = "tests.e2e.granian_app:application"
ENV = {"DJANGO_SETTINGS_MODULE": "tests.settings"}
#: How long a test waits for the server to notice a client has gone (generous: the machine is loaded).
SETTLE = 30.0


@pytest.fixture(scope="module")
def server() -> Iterator[Process]:
    """Granian started with docs/deployment.md's command line (the port and application substituted)."""
    port = free_port()
    argv = command(
        "Production with Granian", "granian", {"--port 8000": f"--port {port}", "myproject.asgi:application": APP}
    )
    assert argv[0] == "granian"
    process = Process([sys.executable, "-m", *argv], ROOT, {"PYTHONPATH": str(ROOT), **ENV}, port)
    process.ws_url = f"ws://127.0.0.1:{port}"  # type: ignore[attr-defined]
    with process:
        yield process


async def stats(server: Process, room: str) -> dict[str, Any]:
    async with websockets.connect(f"{server.ws_url}/ws/stats/{room}/") as ws:  # type: ignore[attr-defined]
        await ws.send("{}")
        return json.loads(await ws.recv())


async def settled(server: Process, room: str, members: int, disconnects: int) -> dict[str, Any]:
    """The room's stats once it has ``members`` members and ``disconnects`` more disconnect() calls than at start."""
    deadline = time.monotonic() + SETTLE
    while True:
        now = await stats(server, room)
        if now["members"] == members and len(now["disconnects"]) >= disconnects:
            return now
        if time.monotonic() > deadline:
            pytest.fail(f"room {room!r} never reached {members} member(s) and {disconnects} disconnect(s): {now}")
        await asyncio.sleep(0.05)


async def joined(server: Process, room: str, count: int = 1) -> list[Any]:
    """``count`` clients in ``room``, connected (the stats tell when they are all members)."""
    clients = [await websockets.connect(f"{server.ws_url}/ws/room/{room}/") for _ in range(count)]  # type: ignore[attr-defined]
    before = await stats(server, room)
    await settled(server, room, count, len(before["disconnects"]))
    return clients


def reset(sock: socket.socket) -> None:
    """Close ``sock`` with a TCP reset: the client vanishes without a close frame."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


async def test_accept_and_group_messages_between_two_clients(server: Process) -> None:
    """Both clients are accepted; a message from one reaches both through the room's group."""
    first, second = await joined(server, "pair", 2)
    try:
        await first.send(json.dumps({"text": "hello"}))
        assert json.loads(await first.recv()) == {"text": "hello"}
        assert json.loads(await second.recv()) == {"text": "hello"}
        await second.send(json.dumps({"text": "back"}))
        assert json.loads(await first.recv()) == {"text": "back"}
        assert json.loads(await second.recv()) == {"text": "back"}
    finally:
        await first.close()
        await second.close()


async def test_clean_close_runs_disconnect_and_leaves_the_group(server: Process) -> None:
    """A client's close frame (1000) reaches disconnect() with its code; the group is empty after."""
    before = len((await stats(server, "clean"))["disconnects"])
    (client,) = await joined(server, "clean")
    await client.close()
    after = await settled(server, "clean", 0, before + 1)
    assert 1000 in after["disconnects"][before:]


async def test_abrupt_close_runs_disconnect_and_leaves_the_group(server: Process) -> None:
    """Twenty clients whose sockets are reset (no close frame): all leave the group via disconnect()."""
    before = len((await stats(server, "abrupt"))["disconnects"])
    clients = await joined(server, "abrupt", 20)
    for client in clients:
        client.transport.abort()
    after = await settled(server, "abrupt", 0, before + 20)
    assert set(after["disconnects"][before:]) <= {1005, 1006}  # no status (Granian's report) or abnormal closure


async def test_abrupt_close_of_a_stalled_client_runs_disconnect(server: Process) -> None:
    """A client that stopped reading while the room floods it, then vanishes: it still leaves the group."""
    before = len((await stats(server, "stall"))["disconnects"])
    stalled = await asyncio.to_thread(stalled_client, server.port, "/ws/room/stall/")
    (sender,) = [await websockets.connect(f"{server.ws_url}/ws/room/stall/")]  # type: ignore[attr-defined]
    await settled(server, "stall", 2, before)
    await sender.send(json.dumps({"flood": 95, "size": 8000}))  # 760 kB: far more than a 4 kB receive buffer
    for _ in range(95):  # within the outbox's bounds (100 frames, 1 MiB): the stalled client is not cut off for it
        await sender.recv()
    reset(stalled)
    await sender.close()
    after = await settled(server, "stall", 0, before + 2)
    assert 1013 not in after["disconnects"][before:], "the stalled client was cut off by the outbox, not reset"


async def test_sigterm_drops_websockets_without_a_close_frame() -> None:
    """SIGTERM: Granian exits promptly and its open WebSockets end with no close frame (the client sees 1006)."""
    with granian(APP, env=ENV) as process:
        clients = await joined(process, "sigterm", 5)
        process.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        for client in clients:
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(client.recv(), SETTLE)
            assert closed.value.rcvd is None  # no close frame from the server
            assert client.close_code == 1006
        assert await asyncio.to_thread(process.proc.wait, SETTLE) == 0  # type: ignore[union-attr]

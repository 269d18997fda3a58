"""How long and how much: the full plan (``make bench``) and the quick one (``QUICK=1``).

The full plan is sized to finish in about 25 minutes on a busy 2-core machine (less on
an idle one) plus about 15 for the scale scenario (its 50,000 sockets are connected
three times), the quick one in under 5 (2 of them the scale scenario's 10,000 sockets);
both are bounded in clients and in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Plan:
    quick: bool
    repeats: int
    #: Runs of Channels in the idle scenario: its connection set-up slows down as
    #: connections accumulate (minutes per run to reach 10,000), so it is measured once.
    idle_reference_repeats: int
    #: Whether to run Redis targets with two server processes (the slowest to set up).
    two_processes: bool
    # echo
    echo_clients: int
    echo_warmup: float
    echo_seconds: float
    # broadcast
    group_sizes: tuple[int, ...]
    fixed_rate_sizes: tuple[int, ...]
    sync_view_sizes: tuple[int, ...]
    broadcast_warmup: float
    saturated_seconds: float
    fixed_seconds: float
    drain_seconds: float
    in_flight: int
    fixed_fraction: float
    # layer micro-benchmarks
    micro_seconds: float
    # idle connections
    idle_counts: tuple[int, ...]
    idle_settle_seconds: float
    # scale: one group of tens of thousands of sockets
    scale_sizes: tuple[int, ...]
    scale_broadcasts: int


FULL = Plan(
    quick=False,
    repeats=3,
    idle_reference_repeats=1,
    two_processes=True,
    echo_clients=50,
    echo_warmup=1.0,
    echo_seconds=3.0,
    group_sizes=(100, 1000, 5000),
    fixed_rate_sizes=(1000, 5000),
    sync_view_sizes=(100,),
    broadcast_warmup=0.5,
    saturated_seconds=1.5,
    fixed_seconds=2.0,
    drain_seconds=4.0,
    in_flight=3,
    fixed_fraction=0.5,
    micro_seconds=1.0,
    idle_counts=(2000, 5000, 10000),
    idle_settle_seconds=1.0,
    scale_sizes=(10000, 20000, 50000),
    scale_broadcasts=20,
)

QUICK = Plan(
    quick=True,
    repeats=1,
    idle_reference_repeats=1,
    two_processes=False,
    echo_clients=50,
    echo_warmup=0.5,
    echo_seconds=2.0,
    group_sizes=(100, 1000),
    fixed_rate_sizes=(1000,),
    sync_view_sizes=(100,),
    broadcast_warmup=0.3,
    saturated_seconds=1.0,
    fixed_seconds=1.0,
    drain_seconds=2.0,
    in_flight=3,
    fixed_fraction=0.5,
    micro_seconds=0.3,
    idle_counts=(500, 1000),
    idle_settle_seconds=0.3,
    scale_sizes=(10000,),
    scale_broadcasts=5,
)

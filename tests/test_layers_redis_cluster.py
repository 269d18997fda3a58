"""Both Redis layers on a real Redis Cluster: settings, and surviving failovers and slot moves.

The behaviour tests of ``test_layers_redis*.py`` run on the session's cluster too
(the ``redis_target`` fixture); this module has what only a cluster has. Fault tests
start their own six-node cluster (``tests.redis_cluster``) and kill, fail over or
migrate its nodes while two layer instances (two "processes") exchange messages.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from hubbub.exceptions import ChannelLayerUnavailable
from hubbub.layers.redis import RedisChannelLayer, RedisPubSubChannelLayer
from tests.redis_cluster import Cluster, redis_cluster
from tests.servers import EXAMPLES, ROOT, free_port, redis_server

pytestmark = pytest.mark.timeout(180)

GROUP = "stadium"


# -- settings ----------------------------------------------------------------------------


@pytest.mark.parametrize("layer_class", [RedisChannelLayer, RedisPubSubChannelLayer])
@pytest.mark.parametrize(
    "config, words",
    [
        ({"cluster": "redis://127.0.0.1:7000"}, "'cluster' must be a non-empty list"),
        ({"cluster": []}, "'cluster' must be a non-empty list"),
        ({"cluster": ["127.0.0.1:7000"]}, "Each entry of 'cluster'"),
        ({"cluster": ["redis://127.0.0.1:7000/3"]}, "only database 0"),
        ({"cluster": ["redis://127.0.0.1:7000"], "prefix": "my{app}"}, "'prefix' must not contain braces"),
        ({"cluster": ["redis://127.0.0.1:7000"], "hosts": ["redis://127.0.0.1:6379"]}, "either 'hosts' or 'cluster'"),
    ],
)
def test_bad_cluster_settings_are_refused_at_construction_naming_the_setting(layer_class, config, words):
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace("{", r"\{")):
        layer_class(**config)


@pytest.mark.parametrize("layer_class", [RedisChannelLayer, RedisPubSubChannelLayer])
async def test_a_single_redis_given_as_a_cluster_is_refused_naming_the_setting(layer_class, redis_url, redis_prefix):
    layer = layer_class(cluster=[redis_url.rsplit("/", 1)[0]], prefix=redis_prefix)
    try:
        with pytest.raises(ValueError, match="in 'cluster' is not a Redis Cluster node"):
            await layer.group_send("lobby", {"type": "hello"})
    finally:
        await layer.close_pools()


async def test_a_node_refusing_the_password_is_reported_naming_the_setting(redis_prefix):
    with redis_server(extra=["--requirepass", "right-password"]) as server:
        layer = RedisChannelLayer(cluster=[f"redis://:wrong-password@127.0.0.1:{server.port}"], prefix=redis_prefix)
        try:
            with pytest.raises(ValueError, match="refused the credentials in 'cluster'") as refused:
                await layer.group_send("lobby", {"type": "hello"})
            assert "wrong-password" not in str(refused.value)
        finally:
            await layer.close_pools()


async def test_a_password_protected_cluster_works_with_the_password_in_the_seed_urls(redis_prefix):
    """Credentials in the first seed URL are used for every node the layer discovers."""
    with redis_cluster(password="cluster-secret") as cluster:
        seeds = [url.replace("redis://", "redis://:cluster-secret@") for url in cluster.urls[:1]]
        layers = [RedisChannelLayer(cluster=seeds, prefix=redis_prefix) for _ in range(2)]
        try:
            channels = [await layers[1].new_channel() for _ in range(16)]
            for index, channel in enumerate(channels):  # groups on every shard, so on every master
                await layers[1].group_add(f"room{index}", channel)
            for index in range(len(channels)):
                await layers[0].group_send(f"room{index}", {"type": "hello", "n": index})
            got = [await asyncio.wait_for(layers[1].receive(channel), 5) for channel in channels]
            assert got == [{"type": "hello", "n": index} for index in range(len(channels))]
        finally:
            await close(layers)


async def test_the_shard_tags_spread_a_groups_keys_over_every_master(redis_cluster_urls, redis_prefix):
    """Each group's keys share one slot; the groups of a busy site land on all three masters."""
    layer = RedisChannelLayer(cluster=redis_cluster_urls, prefix=redis_prefix)
    try:
        channel = await layer.new_channel()
        for index in range(48):
            await layer.group_add(f"room{index}", channel)
        state = layer._state()
        assert len(state.links[0].router.nodes) == 3  # one pipe per master, all in use
        assert await layer.group_count("room7") == 1
    finally:
        await layer.flush()
        await layer.close_pools()


# -- faults --------------------------------------------------------------------------------


class Audience:
    """``per_layer`` members of GROUP in each layer, each draining its channel into a list."""

    def __init__(self, layers: list[Any], per_layer: int):
        self.layers, self.per_layer = layers, per_layer
        self.members: list[tuple[Any, str]] = []
        self.received: dict[str, list[int]] = {}
        self.tasks: list[asyncio.Task] = []

    async def join(self) -> None:
        for layer in self.layers:
            for _ in range(self.per_layer):
                channel = await layer.new_channel()
                await layer.group_add(GROUP, channel)
                self.members.append((layer, channel))
                self.received[channel] = []
        self.tasks = [asyncio.get_running_loop().create_task(self._drain(*member)) for member in self.members]

    async def _drain(self, layer: Any, channel: str) -> None:
        got = self.received[channel]
        while True:
            got.append((await layer.receive(channel))["i"])

    def all_have(self, numbers: set[int]) -> bool:
        return all(numbers <= set(got) for got in self.received.values())

    def missing(self, numbers: range) -> set[int]:
        """The numbers that did not reach every member."""
        wanted = set(numbers)
        return {i for got in self.received.values() for i in wanted - set(got)}

    async def wait_for(self, numbers: set[int], within: float) -> bool:
        deadline = time.monotonic() + within
        while not self.all_have(numbers):
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def delivery_works_again(sender: Any, audience: Audience, within: float = 60.0) -> None:
    """Send probes (negative numbers) until one reaches every member: the layers are back."""
    deadline = time.monotonic() + within
    probe = -1
    while time.monotonic() < deadline:
        try:
            await sender.group_send(GROUP, {"type": "m", "i": probe})
        except ChannelLayerUnavailable:
            await asyncio.sleep(0.1)
            continue
        if await audience.wait_for({probe}, within=1.0):
            return
        probe -= 1
    raise AssertionError(f"no probe reached all {len(audience.members)} members within {within} s")


#: The broadcast group keeps history, so the failovers also show what happens to its epoch.
KEPT = {GROUP: {"history": 100}}


def cluster_layers(cluster: Cluster, prefix: str, capacity: int) -> list[RedisChannelLayer]:
    return [RedisChannelLayer(cluster=cluster.urls, prefix=prefix, capacity=capacity, groups=KEPT) for _ in range(2)]


async def assert_new_epoch(layer: Any, before: dict[str, Any]) -> None:
    """The group's history starts a new epoch: a client at the old position is told to resync."""
    after = await layer.group_history(GROUP, epoch=before["epoch"], since=before["offset"])
    assert after["epoch"] != before["epoch"]
    assert after["recovered"] is False


async def close(layers: list[Any]) -> None:
    for layer in layers:
        await layer.close_pools()


async def test_killing_a_master_mid_broadcast_loses_a_bounded_few_and_nothing_after(redis_prefix, caplog):
    """5,000 messages to 200 members over two layers; the group's master is killed after 1,000.

    The replica takes over, both layers carry on without restart, every message sent
    once delivery works again arrives, and what was lost is counted, logged and bounded.
    """
    total, kill_at = 5000, 1000
    caplog.set_level(logging.WARNING, "hubbub.layers.redis")
    with redis_cluster() as cluster:
        layers = cluster_layers(cluster, redis_prefix, capacity=total + 500)
        audience = Audience(layers, per_layer=100)
        try:
            await audience.join()
            sender = layers[0]
            master = cluster.master_of(cluster.slot_of(sender.keys.members(GROUP)))
            replica = cluster.replica_of(master)
            await sender.group_send(GROUP, {"type": "m", "i": -1000})
            history_before = await sender.group_history(GROUP)
            started = time.monotonic()
            refused = 0
            for i in range(total):
                if i == kill_at:
                    cluster.kill(master)
                try:
                    await sender.group_send(GROUP, {"type": "m", "i": i})
                except ChannelLayerUnavailable:
                    refused += 1
            sent_in = time.monotonic() - started
            await asyncio.to_thread(cluster.wait_master, replica)
            promoted_in = time.monotonic() - started
            await delivery_works_again(sender, audience)
            print(
                f"\nsent in {sent_in:.1f} s, promoted after {promoted_in:.1f} s, "
                f"back after {time.monotonic() - started:.1f} s"
            )
            recovered_in = time.monotonic() - started
            after = set(range(total, total + 100))
            for i in sorted(after):
                await sender.group_send(GROUP, {"type": "m", "i": i})
            assert await audience.wait_for(after, within=30.0), "messages sent after the failover went missing"
            missing = audience.missing(range(total))
            lost_count = sum(layer.lost for layer in layers)
            print(
                f"\nkilled the group's master after {kill_at} of {total} messages to {len(audience.members)} members; "
                f"delivery back after {recovered_in:.1f} s; {len(missing)} message(s) missed by some member "
                f"(numbers {min(missing, default='-')}..{max(missing, default='-')}); {lost_count} counted as lost, "
                f"{refused} group_send(s) raised ChannelLayerUnavailable"
            )
            # Only messages around the outage are missing: those sent after the kill, and at most
            # the few still in the dead master's inboxes (not yet read) when it died.
            assert all(i >= kill_at - 200 for i in missing)
            assert len(missing) <= total - kill_at + 200
            assert lost_count >= refused > 0 and len(missing) > 0  # the kill was felt, and counted
            assert "Lost a Redis cluster node" in caplog.text
            assert "could not be sent meanwhile" in caplog.text
            # The promoted replica numbers the group now: a new epoch, never reused or missing offsets.
            await assert_new_epoch(layers[1], history_before)
        finally:
            await audience.stop()
            await close(layers)


@pytest.fixture(scope="module")
def moving_cluster() -> Iterator[Cluster]:
    """A cluster of this module's own for the tests that fail over or migrate (but never kill) nodes."""
    with redis_cluster() as cluster:
        yield cluster


async def test_a_planned_failover_loses_nothing(redis_prefix, moving_cluster):
    """CLUSTER FAILOVER on the replica of the group's master while 2,000 messages flow."""
    total = 2000
    cluster = moving_cluster
    layers = cluster_layers(cluster, redis_prefix, capacity=total + 500)
    audience = Audience(layers, per_layer=20)
    try:
        await audience.join()
        sender = layers[0]
        replica = cluster.replica_of(cluster.master_of(cluster.slot_of(sender.keys.members(GROUP))))
        await sender.group_send(GROUP, {"type": "m", "i": -1})
        history_before = await sender.group_history(GROUP)
        failover = None
        for i in range(total):
            if i == total // 4:
                failover = asyncio.get_running_loop().run_in_executor(None, cluster.failover, replica)
            await sender.group_send(GROUP, {"type": "m", "i": i})
            if i % 50 == 0:
                await asyncio.sleep(0.005)  # spread the sends over the failover
        await failover
        assert await audience.wait_for(set(range(total)), within=30.0), (
            f"missing after a planned failover: {sorted(audience.missing(range(total)))[:20]}"
        )
        assert sum(layer.lost for layer in layers) == 0
        await assert_new_epoch(layers[1], history_before)  # another node numbers the group now
    finally:
        await audience.stop()
        await close(layers)


async def test_migrating_a_busy_groups_slot_loses_nothing(redis_prefix, moving_cluster):
    """The group's slot (with every process inbox of that shard) moves key by key while messages flow."""
    cluster = moving_cluster
    layers = cluster_layers(cluster, redis_prefix, capacity=5000)
    audience = Audience(layers, per_layer=20)
    sent = 0
    try:
        await audience.join()
        sender = layers[0]
        slot = cluster.slot_of(sender.keys.members(GROUP))
        target = next(node for node in cluster.masters() if node is not cluster.master_of(slot))
        history_before = await sender.group_history(GROUP)
        moving = asyncio.get_running_loop().run_in_executor(None, cluster.move_slot, slot, target)
        while not moving.done() or sent < 500:
            await sender.group_send(GROUP, {"type": "m", "i": sent})
            sent += 1
            await asyncio.sleep(0.002)
        moved = await moving
        assert moved >= 2  # members and routes at least (inboxes exist only while they hold frames)
        assert cluster.master_of(slot) is target
        for _ in range(200):
            await sender.group_send(GROUP, {"type": "m", "i": sent})
            sent += 1
        assert await audience.wait_for(set(range(sent)), within=30.0), (
            f"missing after the slot moved: {sorted(audience.missing(range(sent)))[:20]}"
        )
        assert sum(layer.lost for layer in layers) == 0
        await assert_new_epoch(layers[1], history_before)  # numbered by the slot's new master
    finally:
        await audience.stop()
        await close(layers)


async def test_pubsub_layer_follows_a_planned_failover(redis_prefix, caplog, moving_cluster):
    """Sharded pub/sub: Redis unsubscribes the processes, which subscribe on the promoted replica.

    Pub/sub delivers to whoever is subscribed: once both processes report the cluster
    reachable again, every message arrives.
    """
    caplog.set_level(logging.WARNING, "hubbub.layers.redis")
    cluster = moving_cluster
    layers = [RedisPubSubChannelLayer(cluster=cluster.urls, prefix=redis_prefix) for _ in range(2)]
    audience = Audience(layers, per_layer=5)
    try:
        await audience.join()
        sender = layers[0]
        await delivery_works_again(sender, audience, within=10.0)
        replica = cluster.replica_of(cluster.master_of(cluster.slot_of(sender.keys.topic(GROUP))))
        await asyncio.to_thread(cluster.failover, replica)
        deadline = time.monotonic() + 30
        while caplog.text.count("Redis cluster reachable again") < len(layers):
            assert time.monotonic() < deadline, "the processes did not subscribe again"
            await asyncio.sleep(0.05)
        await delivery_works_again(sender, audience, within=30.0)
        after = set(range(100))
        for i in sorted(after):
            await sender.group_send(GROUP, {"type": "m", "i": i})
        assert await audience.wait_for(after, within=10.0), (
            f"missing after the failover: {sorted(audience.missing(range(100)))[:20]}, "
            f"members missing some: {sum(1 for got in audience.received.values() if not after <= set(got))}"
        )
    finally:
        await audience.stop()
        await close(layers)


# -- manage.py check ------------------------------------------------------------------------


def manage_check(*args: str, **env: str) -> subprocess.CompletedProcess:
    """``manage.py check`` of the example site, its channel layer configured by ``env``."""
    return subprocess.run(
        [sys.executable, "manage.py", "check", *args],
        cwd=EXAMPLES,
        capture_output=True,
        text=True,
        timeout=60,
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT), str(EXAMPLES)]),
            "DJANGO_SETTINGS_MODULE": "demo.settings",
            **env,
        },
    )


def test_manage_py_check_deploy_passes_on_a_cluster(redis_cluster_urls):
    done = manage_check("--deploy", DEMO_REDIS_CLUSTER=",".join(redis_cluster_urls))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "hubbub.E01" not in done.stderr


def test_manage_py_check_deploy_refuses_a_plain_redis_given_as_cluster(redis_url):
    done = manage_check("--deploy", DEMO_REDIS_CLUSTER=redis_url.rsplit("/", 1)[0])
    assert done.returncode != 0
    assert "hubbub.E011" in done.stderr and "in 'cluster' is not a Redis Cluster node" in done.stderr


def test_manage_py_check_deploy_reports_unreachable_seeds(redis_prefix):
    done = manage_check("--deploy", DEMO_REDIS_CLUSTER=f"redis://127.0.0.1:{free_port()}")
    assert done.returncode != 0
    assert "hubbub.E010" in done.stderr and "cannot reach a Redis cluster seed" in done.stderr


def test_manage_py_check_refuses_a_cluster_setting_it_cannot_use():
    """No network needed: a database number in a seed URL is refused by the plain ``check``."""
    done = manage_check(DEMO_REDIS_CLUSTER="redis://127.0.0.1:7000/2")
    assert done.returncode != 0
    assert "hubbub.E011" in done.stderr and "only database 0" in done.stderr

"""The sync engine behind Redis Sentinel: one primary, two replicas, three sentinels (quorum 2).

With ``SYNC_REDIS_WAIT_REPLICAS=1`` a write-through counts only once a replica has it, so a
failover cannot lose an acknowledged write (the promoted replica is the most advanced one);
too few acknowledgements leave the intents for replay like any failed write. The failover
test kills the primary while a writer commits and a reader reads, then checks that nothing
is lost, nothing stale was read and verification is at 100% after replay.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from decimal import Decimal

import pytest
from django.db import connections, transaction

from catalog.models import Part
from sync.cache import connection, repository
from sync.cache.declaration import spec_for
from sync.cache.fence import fence
from sync.cache.keys import cache_key
from sync.cache.replay import replay_pending
from sync.cache.verification import verify
from sync.models import SyncIntent
from tests.factories import make_part
from tests.topology.conftest import point_engine_at
from tests.topology.servers import SentinelSetup, wait_for

pytestmark = pytest.mark.django_db(transaction=True)
PART = "catalog.part"


@pytest.fixture(autouse=True)
def behind_sentinel(sentinel_setup: SentinelSetup, settings) -> Iterator[SentinelSetup]:
    sentinel_setup.wait_ready()  # a failover before this test has settled
    primary = sentinel_setup.node_on(sentinel_setup.current_primary_port())
    with primary.client() as client:
        client.flushall()
        client.script_flush()
    point_engine_at(
        settings, sentinel_setup.url, SYNC_REDIS_WAIT_REPLICAS=1, SYNC_REDIS_WAIT_TIMEOUT_MS=100
    )
    yield sentinel_setup
    for node in sentinel_setup.nodes:
        node.resume()


def cached_version(node, pk) -> int | None:
    with node.client() as client:
        found = client.hget(cache_key(PART, pk), "v")
    return int(found) if found is not None else None


def test_a_write_through_is_on_a_replica_when_it_returns_and_kept_for_replay_when_not(
    sentinel_setup: SentinelSetup,
) -> None:
    part = make_part(price=Decimal(1))
    part.refresh_from_db()
    # WAIT 1 answered before the commit returned: a replica already holds this version.
    replicas = sentinel_setup.current_replicas()
    assert max(cached_version(replica, part.pk) or 0 for replica in replicas) == part.version

    for replica in replicas:
        replica.pause()
    try:
        with transaction.atomic():
            part.price = Decimal(2)
            part.save()
        intent = SyncIntent.objects.get(model=PART, object_pk=str(part.pk))
        assert "0 of 1 replica(s) acknowledged the write within 100 ms" in intent.last_error
        assert connection.breaker.state == connection.breaker.CLOSED  # the primary answers
        assert not fence.trusts(PART)
        assert repository.get(Part, part.pk).price == Decimal(2)  # from PostgreSQL
    finally:
        for replica in replicas:
            replica.resume()

    assert replay_pending(include_not_due=True).failed == 0
    assert not SyncIntent.objects.filter(model=PART).exists()
    fence.invalidate()
    assert fence.trusts(PART)
    assert repository.get(Part, part.pk).price == Decimal(2)
    assert verify(spec_for(PART)).ok


def test_a_process_that_only_reads_follows_a_planned_failover(
    sentinel_setup: SentinelSetup, settings
) -> None:
    settings.SYNC_REDIS_SENTINEL_CHECK = 0.2
    part = make_part(price=Decimal(1))
    assert repository.get(Part, part.pk).price == Decimal(1)  # a pooled connection
    pool = connection.client().connection_pool
    old_port = sentinel_setup.current_primary_port()
    assert pool.master_address[1] == old_port

    with sentinel_setup.sentinels[0].client() as client:
        client.execute_command("SENTINEL FAILOVER", "syncops")
    new_port = wait_for(
        lambda: (port := sentinel_setup.current_primary_port()) != old_port and port,
        30,
        "a new primary",
    )

    # Only reads from here on: no refused write tells the client; its own check does, and
    # the demoted primary's pooled connections are dropped.
    def reads_from_the_new_primary() -> bool:
        assert repository.get(Part, part.pk).price == Decimal(1)
        return pool.master_address[1] == new_port

    wait_for(reads_from_the_new_primary, 5, "reads from the new primary")
    assert {conn.port for conn in pool._available_connections} <= {new_port}


class Traffic:
    """A writer committing price changes and a reader checking every read against what had
    committed before the read began (a read older than that is a stale read)."""

    def __init__(self, found: list[Part]) -> None:
        self.parts = found
        self.committed = {part.pk: part.version for part in found}
        self.commits = self.reads = 0
        self.stale: list[tuple[int, int, int]] = []
        self.errors: list[BaseException] = []
        self.stop = threading.Event()
        self.threads = [
            threading.Thread(target=self._guard, args=(work,), daemon=True)
            for work in (self._write, self._read)
        ]

    def __enter__(self) -> Traffic:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)

    def _guard(self, work) -> None:
        try:
            while not self.stop.is_set():
                work()
        except BaseException as e:  # noqa: BLE001 - reported by the test, not lost in a thread
            self.errors.append(e)
        finally:
            connections.close_all()

    def _write(self) -> None:
        part = self.parts[self.commits % len(self.parts)]
        with transaction.atomic():
            part.price += 1
            part.save()  # the write-through runs on commit, before atomic() returns
        part.refresh_from_db(fields=["version"])
        self.committed[part.pk] = part.version
        self.commits += 1

    def _read(self) -> None:
        part = self.parts[self.reads % len(self.parts)]
        floor = self.committed[part.pk]
        seen = repository.get(Part, part.pk).version
        if seen < floor:
            self.stale.append((part.pk, seen, floor))
        self.reads += 1
        time.sleep(0.001)


# NOTE: in this order: the planned failover leaves a primary and two replicas, the kill one.
# A planned failover (or a partition) leaves the old primary running with the replica that is
# not promoted for a moment: only WAIT for every replica keeps what it acknowledges then.
@pytest.mark.parametrize(
    ("failover", "wait"), [("SENTINEL FAILOVER", 2), ("SIGKILL of the primary", 1)]
)
def test_a_failover_during_writes_loses_nothing_and_serves_nothing_stale(
    sentinel_setup: SentinelSetup, settings, failover: str, wait: int
) -> None:
    settings.SYNC_REDIS_WAIT_REPLICAS = wait
    found = [make_part(price=Decimal(n)) for n in range(20)]
    for part in found:
        part.refresh_from_db()
    old = sentinel_setup.node_on(sentinel_setup.current_primary_port())

    with Traffic(found) as traffic:
        wait_for(lambda: traffic.commits >= 40, 20, "writes before the failover")
        if failover == "SENTINEL FAILOVER":  # planned: the old primary is demoted (READONLY)
            with sentinel_setup.sentinels[0].client() as client:
                client.execute_command("SENTINEL FAILOVER", "syncops")
        else:
            old.kill()
        killed_at, commits_at_kill = time.monotonic(), traffic.commits
        wait_for(
            lambda: sentinel_setup.current_primary_port() != old.port,
            30,
            "a sentinel-elected new primary",
        )
        promoted_after = time.monotonic() - killed_at
        sentinel_setup.wait_ready()  # the replicas follow the new primary
        resumed = traffic.commits
        wait_for(lambda: traffic.commits > resumed + 20, 30, "commits on the new primary")
        replay_pending(include_not_due=True)  # also while traffic runs, as beat would
        wait_for(lambda: traffic.reads > 100, 20, "reads during the run")
    assert traffic.errors == []
    assert traffic.stale == [], f"stale reads: {traffic.stale[:5]}"
    assert traffic.commits > commits_at_kill

    def replayed() -> bool:  # what failed during the failover, and anything written meanwhile
        replay_pending(include_not_due=True)
        return not SyncIntent.objects.filter(model=PART).exists()

    wait_for(replayed, 20, "every intent replayed")
    new = sentinel_setup.node_on(sentinel_setup.current_primary_port())
    for part in Part.objects.filter(pk__in=[p.pk for p in found]):
        assert cached_version(new, part.pk) == part.version  # newest version, none lost
    report = verify(spec_for(PART))
    assert report.ok, str(report)
    assert report.fraction == 1.0
    fence.invalidate()
    assert fence.trusts(PART)
    print(  # noqa: T201
        f"\n{failover}, WAIT {wait}: new primary after {promoted_after:.2f}s; "
        f"{traffic.commits} commits, "
        f"{traffic.reads} reads, 0 stale"
    )

"""The sync engine, unchanged, on a real three-primary Redis Cluster (docs/scaling.md).

Write-through of every kind of synced model, cache-first reads, verification, warming and
the events stream against keys spread over all three primaries; a primary paused or killed
during writes costs no stale read and replay repairs it; a slot moving to another primary
(resharding) costs one failed write, then the client follows the new map.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from decimal import Decimal

import pytest
from django.db import transaction

from buyers.models import Buyer
from catalog.events import STREAM
from catalog.models import Part, StockLevel
from customers.models import Customer
from sync.cache import connection, events, outbox, repository, store
from sync.cache.declaration import spec_for
from sync.cache.exceptions import CacheUnavailableError
from sync.cache.fence import fence
from sync.cache.keys import cache_key
from sync.cache.metrics import CACHE_READS
from sync.cache.replay import replay_pending
from sync.cache.verification import verify
from sync.cache.warming import warm
from sync.models import SyncIntent
from tests.factories import make_part
from tests.topology.conftest import point_engine_at
from tests.topology.servers import Cluster

pytestmark = pytest.mark.django_db(transaction=True)
PART = "catalog.part"


@pytest.fixture(autouse=True)
def on_cluster(cluster: Cluster, settings) -> Iterator[Cluster]:
    cluster.flush()
    point_engine_at(settings, cluster.url)
    yield cluster
    for node in cluster.nodes:
        node.resume()


def hits(label: str) -> float:
    return CACHE_READS.labels(label, "hit")._value.get()


def parts(count: int) -> list[Part]:
    return [make_part(price=Decimal(n + 1)) for n in range(count)]


def reprice_all(found: list[Part], by: Decimal = Decimal(100)) -> None:
    """One committed transaction per part, each written through on commit."""
    for part in found:
        with transaction.atomic():
            part.price += by
            part.save()


def assert_verified_everywhere(*labels: str) -> None:
    for label in labels:
        report = verify(spec_for(label))
        assert report.ok, str(report)
        assert report.fraction == 1.0


def test_synced_models_write_through_to_all_primaries_and_reads_are_cache_hits(
    cluster: Cluster,
) -> None:
    found = parts(30)
    for part in found:
        StockLevel.objects.create(part=part, quantity=5)
    customer = Customer.objects.create(
        customer_number="C-1", name="Ann Example", email="ann@example.com", phone="+1 555 0100"
    )
    now = datetime.datetime.now(tz=datetime.UTC)
    buyer = Buyer.objects.create(
        buyer_number="B-1",
        status="active",
        budget=250000,
        created_at=now,
        synced_at=now,
        db_updated_at=now,
    )

    spread = cluster.keys_per_node("syncops:*")
    assert all(count > 0 for count in spread.values()), spread
    assert sum(spread.values()) >= 30 + 30 + 1 + 1

    before = hits(PART)
    for part in found:
        assert repository.get(Part, part.pk).price == part.price
    assert repository.get_many(Part, [p.pk for p in found]).keys() == {p.pk for p in found}
    assert hits(PART) - before == 60  # every read answered by Redis, none by PostgreSQL
    assert repository.get(StockLevel, found[0].pk).quantity == 5
    assert repository.get_by(Customer, email="ann@example.com").pk == customer.pk
    assert repository.get(Buyer, buyer.pk).budget == 250000

    # One event per part and per stock level, on the stream's own slot; appending the same
    # states again (a replay) adds none.
    stream = events.stream_key(STREAM)
    with cluster.node_for(stream).client() as client:
        assert client.xlen(stream) == 60
        states = outbox.row_states(
            spec_for(PART), [str(p.pk) for p in found], {str(p.pk): 0 for p in found}
        )
        assert events.append(states) == 0
        assert client.xlen(stream) == 60
    assert_verified_everywhere(PART, "catalog.stocklevel", "customers.customer", "buyers.buyer")


def test_verification_warming_and_scans_cover_every_primary(cluster: Cluster) -> None:
    found = parts(30)
    assert_verified_everywhere(PART)

    emptied = cluster.node_for(cache_key(PART, found[0].pk))
    lost = cluster.keys_per_node(f"syncops:{PART}:*")[emptied.name]
    with emptied.client() as client:
        client.flushall()
        client.script_flush()
    report = verify(spec_for(PART))
    assert (report.missing, report.consistent) == (lost, 30 - lost)

    # Reads refill what the emptied primary lost (miss, lease, fill; its scripts are gone
    # too: NOSCRIPT, loaded again on every primary) ...
    assert {repository.get(Part, p.pk).price for p in found} == {p.price for p in found}
    assert_verified_everywhere(PART)
    # ... and so does warming.
    with emptied.client() as client:
        client.flushall()
        client.script_flush()
    assert warm(spec_for(PART)).written == lost
    assert_verified_everywhere(PART)

    # Live entries for rows PostgreSQL does not have, one on each primary: the scan finds
    # all three, and repair tombstones them.
    strays = {}
    for pk in range(10**9, 10**9 + 200):
        strays.setdefault(cluster.node_for(cache_key(PART, pk)).name, pk)
    store.write_many(
        [
            store.CacheWrite(cache_key(PART, pk), 1, b"[]", "", False, 60_000)
            for pk in strays.values()
        ]
    )
    report = verify(spec_for(PART), repair=True)
    assert report.extra == 3
    assert sorted(report.examples["extra"]) == sorted(cache_key(PART, pk) for pk in strays.values())
    assert_verified_everywhere(PART)


def test_a_paused_primary_during_writes_costs_no_stale_read_and_replay_repairs_it(
    cluster: Cluster,
) -> None:
    found = parts(30)
    paused = cluster.node_for(cache_key(PART, found[0].pk))
    paused.pause()
    try:
        reprice_all(found)  # never raises (I1): failed writes leave their intents
        assert SyncIntent.objects.filter(model=PART).exists()
        assert not fence.trusts(PART)
        for part in found:  # PostgreSQL answers while the model is fenced: never an old price
            assert repository.get(Part, part.pk).price == part.price
    finally:
        paused.resume()

    connection.breaker.reset()
    result = replay_pending(include_not_due=True)
    assert result.failed == 0
    assert not SyncIntent.objects.filter(model=PART).exists()
    fence.invalidate()
    assert fence.trusts(PART)
    assert_verified_everywhere(PART)
    before = hits(PART)
    assert {repository.get(Part, p.pk).price for p in found} == {p.price for p in found}
    assert hits(PART) - before == 30


def test_a_killed_primary_comes_back_empty_and_replay_and_warming_restore_it(
    cluster: Cluster,
) -> None:
    found = parts(30)
    killed = cluster.node_for(cache_key(PART, found[0].pk))
    killed.kill()
    try:
        reprice_all(found)
        for part in found:
            assert repository.get(Part, part.pk).price == part.price
    finally:
        killed.start()  # same port and nodes file: it rejoins with its slots, and no data
        cluster.wait_ok()

    connection.breaker.reset()
    assert replay_pending(include_not_due=True).failed == 0
    report = verify(spec_for(PART))
    assert report.stale == 0  # what came back is missing (empty node), never old
    warm(spec_for(PART))
    assert_verified_everywhere(PART)
    fence.invalidate()
    assert fence.trusts(PART)


def test_a_primary_that_left_during_a_scan_is_an_unavailable_cache(cluster: Cluster) -> None:
    with pytest.raises(CacheUnavailableError, match="unavailable"):
        connection.run(lambda client: store._primary(client, "127.0.0.1:1"))
    assert connection.breaker.state == connection.breaker.OPEN


def test_a_resharded_slot_costs_one_failed_write_then_the_map_follows(cluster: Cluster) -> None:
    make_part()  # the engine's client has read the slot map
    keys = [cache_key(PART, pk) for pk in range(2 * 10**9, 2 * 10**9 + 50)]
    source = cluster.node_for(keys[0])
    target = next(node for node in cluster.nodes if node is not source)
    with source.client() as client:
        slot = client.execute_command("CLUSTER KEYSLOT", keys[0])
        source_id = client.execute_command("CLUSTER MYID").decode()
    with target.client() as client:
        target_id = client.execute_command("CLUSTER MYID").decode()
        client.execute_command("CLUSTER SETSLOT", slot, "IMPORTING", source_id)
    with source.client() as client:
        client.execute_command("CLUSTER SETSLOT", slot, "MIGRATING", target_id)
    for node in [target, source, *(n for n in cluster.nodes if n not in (source, target))]:
        with node.client() as client:  # the slot has no keys: nothing to MIGRATE
            client.execute_command("CLUSTER SETSLOT", slot, "NODE", target_id)
    cluster.wait_ok()

    writes = [store.CacheWrite(key, 1, b"[]", "", True, 60_000) for key in keys]
    with pytest.raises(CacheUnavailableError, match="MovedError"):
        store.write_many(writes)
    assert store.write_many(writes, replace_equal=True) == [True] * len(keys)
    assert cluster.node_for(keys[0]) is target
    with target.client() as client:
        assert client.exists(keys[0])

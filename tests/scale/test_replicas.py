"""PostgreSQL read replicas (sync/replicas.py) against a real streaming replica of the test's
own primary, started by the tests (``pg_basebackup``, a hot standby on a socket of its own;
tests/scale/replica.py) and stopped whatever happens. Lag is made for real: the replica's
replay is paused (``pg_wal_replay_pause()``), so a row committed on the primary afterwards is
on the primary only. docs/scaling.md "PostgreSQL read replicas" is the operator's summary.

Without a replica the primary can feed (pass 2's system PostgreSQL has no ``replication``
entry in its pg_hba.conf, and the tests never edit a server they did not start), the module
is skipped, saying why; the settings tests at the end run everywhere."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from decimal import Decimal

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import OperationalError, ProgrammingError, connections, transaction
from health_check.exceptions import ServiceWarning

from catalog.models import Part
from config.env import ROOT
from devtools.sheets import BUYER_HEADERS, buyer_rows, write
from sync import replicas
from sync.cache import repository, store
from sync.cache.keys import cache_key
from sync.ops.health import DatabaseReplica
from sync.ops.metrics import render_metrics
from sync.replicas import FALLBACKS, READS, ReplicaRouter, ReplicaStatus, stale_reads
from tests.engine_fixtures import fresh_engine_state, redis_raw  # noqa: F401 - fixtures
from tests.factories import make_part
from tests.scale.replica import StreamingReplica, why_not_replicable
from tests.waiting import wait_until

ALIASES = ("replica", "replica_2")  # two aliases of the one server: the turn between them


@pytest.fixture(scope="module")
def streaming_replica(django_db_setup, django_db_blocker) -> Iterator[StreamingReplica]:
    with django_db_blocker.unblock():
        reason = why_not_replicable()
        if reason:
            pytest.skip(f"no streaming replica: {reason}")
        server = StreamingReplica()
    try:
        with django_db_blocker.unblock():
            server.start()
        for name in ALIASES:
            connections.settings[name] = connections.configure_settings(
                {"default": connections.settings["default"], name: server.django_settings()}
            )[name]
        yield server
    finally:
        for name in ALIASES:
            with contextlib.suppress(KeyError, AttributeError):
                connections[name].close()
                del connections[name]
            connections.settings.pop(name, None)
        server.stop()


@pytest.fixture
def replica(streaming_replica, settings, fresh_engine_state) -> Iterator[StreamingReplica]:  # noqa: F811
    """The replica as ``DATABASE_REPLICA_URL`` would configure it, caught up with the
    primary; running and replaying again afterwards."""
    settings.DATABASE_REPLICAS = ["replica"]
    settings.DATABASE_ROUTERS = ["sync.replicas.ReplicaRouter"]
    settings.DATABASE_REPLICA_RETRY = 0.3
    replicas.forget_state()
    streaming_replica.caught_up()
    yield streaming_replica
    replicas.forget_state()
    for name in ALIASES:
        connections[name].close()
    if streaming_replica.proc is None or streaming_replica.proc.poll() is not None:
        streaming_replica.start()
    streaming_replica.resume_replay()


def _on_replica(server: StreamingReplica, sku: str) -> bool:
    return bool(server.sql("SELECT count(*) FROM catalog_parts WHERE sku = %s", (sku,)))


@pytest.mark.django_db(transaction=True, databases=["default", *ALIASES])
@pytest.mark.slow
def test_a_stale_tolerant_read_goes_to_the_replica_and_nothing_else_does(replica, client):
    old = make_part(sku="REPL-A-1")
    replica.caught_up()
    replica.pause_replay()
    new = make_part(sku="REPL-A-2")  # committed on the primary, not replayed
    assert not _on_replica(replica, new.sku)

    with stale_reads() as database:
        assert database == "replica"
        assert list(Part.objects.filter(sku__startswith="REPL-A-").values_list("sku", flat=True))
        assert not Part.objects.filter(pk=new.pk).exists()  # the replica's view
    # Outside the block, the primary's.
    assert Part.objects.filter(pk=new.pk).exists()

    # The catalog's list: its count and ids from the replica, so the new part is not listed yet.
    page = client.get("/api/parts?q=REPL-A-").json()
    assert (page["count"], [item["sku"] for item in page["items"]]) == (1, [old.sku])

    replica.resume_replay()
    replica.caught_up()
    page = client.get("/api/parts?q=REPL-A-").json()
    assert [item["sku"] for item in page["items"]] == [old.sku, new.sku]


@pytest.mark.django_db(transaction=True, databases=["default", *ALIASES])
@pytest.mark.slow
def test_replica_lag_never_reaches_a_cache_fill(replica, client, redis_raw):  # noqa: F811
    part = make_part(sku="REPL-F-1", price=Decimal("10.00"))
    replica.caught_up()
    replica.pause_replay()
    part.price = Decimal("20.00")
    part.save()  # written through: Redis has the new version, the replica the old one
    new_version = Part.objects.get(pk=part.pk).version
    on_replica = replica.sql("SELECT price FROM catalog_parts WHERE id = %s", (part.pk,))
    assert on_replica == Decimal("10.00")

    key = cache_key("catalog.part", part.pk)
    redis_raw.delete(key)  # evicted (or the cache Redis restarted): the next read fills it
    with stale_reads() as database:  # even a fill inside a block of stale-tolerant reads
        assert database == "replica"
        filled = repository.get(Part, part.pk)
    assert filled is not None
    assert (filled.price, filled.version) == (Decimal("20.00"), new_version)
    assert store.read_row(key).version == new_version  # what the fill stored: the new row

    # The list page: ids from the (lagging) replica, rows cache-first, misses filled from the
    # primary: the new price, and the cache holds the new version.
    redis_raw.delete(key)
    page = client.get("/api/parts?q=REPL-F-").json()
    assert [(i["price"], i["version"]) for i in page["items"]] == [("20.00", new_version)]
    assert store.read_row(key).version == new_version


@pytest.mark.django_db(transaction=True, databases=["default", *ALIASES])
@pytest.mark.slow
def test_reads_inside_a_write_transaction_go_to_the_primary(replica):
    replica.pause_replay()
    new = make_part(sku="REPL-T-1")
    with stale_reads() as database:
        assert database == "replica"
        with transaction.atomic():
            assert Part.objects.filter(pk=new.pk).exists()  # primary: sees its own writes
            Part.objects.filter(pk=new.pk).update(name="changed")
            assert Part.objects.get(pk=new.pk).name == "changed"
        assert not Part.objects.filter(pk=new.pk).exists()  # after it: the replica again
    with transaction.atomic(), stale_reads() as database:
        assert database == "default"  # a block opened in a transaction uses the primary
        assert Part.objects.filter(pk=new.pk).exists()
    assert not ReplicaRouter().allow_migrate("replica", "catalog")
    assert ReplicaRouter().allow_migrate("default", "catalog")
    assert ReplicaRouter().allow_relation(new, new)


@pytest.mark.django_db(transaction=True, databases=["default", *ALIASES])
@pytest.mark.slow
def test_replicas_take_turns(replica, settings):
    settings.DATABASE_REPLICAS = list(ALIASES)
    used = set()
    for _ in range(4):
        with stale_reads() as database:
            assert Part.objects.count() >= 0
            used.add(database)
    assert used == set(ALIASES)


@pytest.mark.django_db(transaction=True, databases=["default", *ALIASES])
@pytest.mark.slow
def test_a_replica_that_is_down_falls_back_to_the_primary(replica, settings, caplog):
    new = make_part(sku="REPL-D-1")
    replica.caught_up()
    settings.DATABASE_REPLICA_RETRY = 0.5
    unreachable = FALLBACKS.labels("replica", "unreachable")
    # Down in the middle of a block: that block's caller sees the error, the next block
    # goes to the primary.
    with pytest.raises(OperationalError), stale_reads() as database:
        assert database == "replica"
        assert Part.objects.filter(pk=new.pk).exists()
        replica.halt()
        Part.objects.filter(pk=new.pk).exists()
    with stale_reads() as database:
        assert database == "default"  # left alone for DATABASE_REPLICA_RETRY
        assert Part.objects.filter(pk=new.pk).exists()
    # After the interval a block tries it again, finds it still down: the primary again.
    tried = unreachable._value.get()
    wait_until(
        lambda: _block_database() == "default" and unreachable._value.get() > tried,
        what="the replica tried again",
    )
    warnings = [r for r in caplog.records if r.name == "sync.replicas"]
    assert len(warnings) == 1, "one warning per outage, not one per read"
    assert "replica replica does not answer" in warnings[0].getMessage()
    assert warnings[0].levelno == logging.WARNING

    # /health/ and the gauges say so.
    assert "does not answer" in replicas.replica_status("replica").problem(30.0)
    assert 'sync_db_replica_up{replica="replica"} 0.0' in render_metrics().decode()

    # Back: the next block after the interval finds it, and says so.
    replica.start()
    with caplog.at_level(logging.INFO, logger="sync.replicas"):
        wait_until(lambda: _block_database() == "replica", what="the replica used again")
    assert any("answers again" in r.getMessage() for r in caplog.records)


def _block_database() -> str:
    with stale_reads() as database:
        return database


@pytest.mark.django_db(transaction=True, databases=["default", *ALIASES])
@pytest.mark.slow
def test_an_error_of_the_query_itself_leaves_the_replica_in_use(replica):
    with pytest.raises(ProgrammingError), stale_reads() as database:
        assert database == "replica"
        with connections[database].cursor() as cursor:
            cursor.execute("SELECT no_such_column FROM parts")
    assert _block_database() == "replica"


@pytest.mark.django_db(transaction=True, databases=["default", *ALIASES])
@pytest.mark.slow
def test_health_and_metrics_show_replay_lag(replica, settings):
    def healthy() -> bool:
        try:
            return DatabaseReplica("replica").run() is None
        except ServiceWarning:  # WAL received but not yet replayed, on a loaded machine
            return False

    assert wait_until(healthy, timeout=30, what="the replica caught up: OK")
    replica.pause_replay()
    make_part(sku="REPL-H-1")  # received, not replayed
    with pytest.raises(ServiceWarning, match="replay paused"):
        DatabaseReplica("replica").run()
    text = render_metrics().decode()
    assert 'sync_db_replica_up{replica="replica"} 1.0' in text
    assert 'sync_db_replica_replay_paused{replica="replica"} 1.0' in text
    assert 'sync_db_replica_lag_seconds{replica="replica"}' in text
    assert repr(DatabaseReplica("replica")) == "Database replica"
    assert repr(DatabaseReplica("replica_2")) == "Database replica_2"

    # A "replica" URL that names the primary by mistake is said to be one.
    settings.DATABASE_REPLICAS = ["default"]
    with pytest.raises(ServiceWarning, match="is not a standby"):
        DatabaseReplica("default").run()


@pytest.mark.django_db(transaction=True, databases=["default", *ALIASES])
@pytest.mark.slow
def test_dashboard_and_metrics_figures_come_from_the_replica(replica, admin_client):
    before = READS.labels("replica")._value.get()
    assert admin_client.get("/api/sync/dashboard?health=0").status_code == 200
    render_metrics()
    assert READS.labels("replica")._value.get() == before + 2


@pytest.mark.django_db(transaction=True, databases=["default", *ALIASES])
@pytest.mark.slow
def test_find_missing_reads_a_replica_only_when_it_has_every_commit(replica, settings, tmp_path):
    from sync.ingest.pipeline import run_ingest
    from sync.ingest.source_checks import source_find_missing

    sources = (ROOT / "config" / "ingest_sources.toml").read_text()
    (tmp_path / "sources.toml").write_text(
        sources.replace(".run/demo/buyers.csv", str(tmp_path / "buyers.csv"))
    )
    settings.SYNC_INGEST_SOURCES_FILE = str(tmp_path / "sources.toml")
    write(tmp_path / "buyers.csv", BUYER_HEADERS, list(buyer_rows(12, 0)))

    # A run that has just finished, not yet replayed: the scan must not call its rows missing.
    replica.pause_replay()
    assert run_ingest("buyers").created == 12
    behind = FALLBACKS.labels("replica", "behind")._value.get()
    assert source_find_missing("buyers").missing == []
    assert FALLBACKS.labels("replica", "behind")._value.get() == behind + 1  # the primary's

    # Once the replica has it all, the scan is the replica's. The primary writes WAL of its own
    # (a checkpoint, autovacuum) between "caught up" and the scan's look at its position, so a
    # scan may still find the replica behind by such a record: the product then reads the
    # primary, correctly; the replica is caught up again and the scan repeated until it is used.
    replica.resume_replay()

    def scanned_on_the_replica() -> bool:
        replica.caught_up()
        used = READS.labels("replica")._value.get()
        report = source_find_missing("buyers")
        assert (report.missing, report.in_database) == ([], 12)
        return READS.labels("replica")._value.get() == used + 1

    wait_until(scanned_on_the_replica, timeout=30, what="a scan on the caught-up replica")


# --------------------------------------------------------------------------- everywhere


def test_replica_urls_become_aliases_with_the_primary_options():
    default = {"CONN_MAX_AGE": 60, "CONN_HEALTH_CHECKS": True, "DISABLE_SERVER_SIDE_CURSORS": True}
    found = replicas.replica_databases(
        "postgres://app:secret@db-r1:5432/shop, postgres://app@/shop?host=/run/pg", default
    )
    assert list(found) == ["replica", "replica_2"]
    first, second = found["replica"], found["replica_2"]
    assert (first["HOST"], first["PORT"], first["NAME"]) == ("db-r1", 5432, "shop")
    assert first["CONN_MAX_AGE"] == 60 and first["DISABLE_SERVER_SIDE_CURSORS"] is True
    assert first["TEST"] == {"MIRROR": "default"}
    assert first["OPTIONS"]["connect_timeout"] == 2
    assert second["HOST"] == "/run/pg"
    assert replicas.replica_databases("", default) == {}
    assert replicas.replica_databases("postgres://a@h/db?connect_timeout=7", {})["replica"][
        "OPTIONS"
    ] == {"connect_timeout": 7}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("postgres://app:secret@db:notaport/shop", "URL 1 of 1 is malformed"),
        ("postgres://db/shop,mysql://db/shop", "URL 2 of 2 is not a PostgreSQL URL"),
        ("postgres://db:5432/", "URL 1 of 1 is not a PostgreSQL URL with a database name"),
        ("not a url", "URL 1 of 1 is not a PostgreSQL URL"),
    ],
)
def test_a_malformed_replica_url_stops_startup_naming_the_setting(value, message):
    with pytest.raises(ImproperlyConfigured, match="DATABASE_REPLICA_URL") as raised:
        replicas.replica_databases(value, {})
    assert message in str(raised.value)
    assert "secret" not in str(raised.value)


def test_without_replicas_nothing_changes(db):
    assert replicas.replicas() == []
    with stale_reads() as database:
        assert database == "default"
        assert replicas.read_alias() == "default"
    assert replica_problems() == ["", "does not answer (gone): its reads go to the primary"]


def replica_problems() -> list[str]:
    ok = ReplicaStatus("replica", answers=True, standby=True, lag_seconds=0.0)
    gone = ReplicaStatus("replica", answers=False, error="gone")
    return [ok.problem(30.0), gone.problem(30.0)]


def test_what_a_replica_status_says():
    behind = ReplicaStatus("replica", answers=True, standby=True, lag_seconds=45.0)
    assert behind.problem(30.0) == "45.0 s behind (warning above 30 s)"
    assert behind.problem(60.0) == ""
    paused = ReplicaStatus("replica", answers=True, standby=True, lag_seconds=None, paused=True)
    assert paused.problem(30.0) == "replay paused, 0.0 s behind"


def test_a_wal_position_past_a_page_header_counts_as_the_boundary():
    page, segment = 8192, 16 * 1024 * 1024
    assert replicas.replay_end(3 * segment + 40, page, segment) == 3 * segment
    assert replicas.replay_end(3 * segment + 5 * page + 24, page, segment) == 3 * segment + 5 * page
    assert replicas.replay_end(3 * segment + 5 * page + 96, page, segment) == (
        3 * segment + 5 * page + 96
    )


def test_health_checks_each_configured_replica_by_name(settings):
    from sync.ops import health

    settings.DATABASE_REPLICAS = ["replica", "replica_2"]

    names = [repr(check.check) for check in health.checks()]

    assert names[:3] == ["Database(alias='default')", "Database replica", "Database replica_2"]

"""Real faults and real concurrency: a second run of a busy source (another connection,
another process), cancel between batches, a terminated PostgreSQL backend mid-run, a row
lock that times out (the record retry queue), and write-through of what a run stored."""

from __future__ import annotations

import logging
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, connections, transaction

from buyers.models import Buyer
from devtools.sheets import buyer_rows
from sync.cache.keys import cache_key
from sync.ingest.exceptions import SyncAlreadyRunningError
from sync.ingest.pipeline import LOCK_CLASS, request_cancel, run_ingest
from sync.models import ErrorLog, RecordLog, RecordRetry, SyncAlert, SyncIntent, SyncRun
from tests.subprocesses import popen_python
from tests.waiting import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def other_connection():
    return connections.create_connection("default")


def terminate_own_backend() -> None:
    """Kill this connection's PostgreSQL backend from a second connection."""
    connection.ensure_connection()
    pid = connection.connection.info.backend_pid
    other = other_connection()
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    finally:
        other.close()


def test_a_second_run_of_a_locked_source_is_refused_with_a_clear_message(buyers_sheet) -> None:
    buyers_sheet(count=5)
    holder = other_connection()
    try:
        with holder.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s, hashtext('buyers'))", [LOCK_CLASS])
        with pytest.raises(SyncAlreadyRunningError, match="another sync of this source"):
            run_ingest("buyers")
        with pytest.raises(CommandError, match=r"refused\. Wait for it to finish"):
            call_command("sync_ingest", "buyers", stdout=StringIO())
        assert set(SyncRun.objects.values_list("status", flat=True)) == {"refused"}
        assert Buyer.objects.count() == 0
        run_ingest("sellers", file=str(buyers_sheet(count=0, name="sellers.csv")))  # not locked
    finally:
        holder.close()
    # The server ends the holder's session (and frees its lock) after the client has gone.
    wait_until(_buyers_lock_is_free, what="the holder's session ended")
    assert run_ingest("buyers").created == 5


def _buyers_lock_is_free() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, hashtext('buyers'))", [LOCK_CLASS])
        (free,) = cursor.fetchone()
        if free:
            cursor.execute("SELECT pg_advisory_unlock(%s, hashtext('buyers'))", [LOCK_CLASS])
    return bool(free)


def test_two_processes_one_source_one_is_refused(
    buyers_sheet, tmp_path, settings, monkeypatch
) -> None:
    buyers_sheet(count=50)
    go = tmp_path / "go"
    monkeypatch.setenv("SYNC_INGEST_SOURCES_FILE", settings.SYNC_INGEST_SOURCES_FILE)
    child = popen_python(f"""
        import pathlib, time
        from sync.ingest.pipeline import run_ingest
        def wait(run):
            deadline = time.monotonic() + 30
            while not pathlib.Path({str(go)!r}).exists() and time.monotonic() < deadline:
                time.sleep(0.01)
        run = run_ingest("buyers", batch_size=10, progress=wait)
        print(run.status, run.created)
    """)
    try:
        running = wait_until(
            lambda: SyncRun.objects.filter(status="running", rows_done__gt=0).first(), timeout=30
        )
        with pytest.raises(SyncAlreadyRunningError, match=f"run {running.pk}"):
            run_ingest("buyers")
    finally:
        go.touch()
        out, err = child.communicate(timeout=60)
    assert out.split() == ["succeeded", "50"], err
    assert Buyer.objects.count() == 50


def test_cancel_between_batches_leaves_consistent_data_and_status(buyers_sheet) -> None:
    buyers_sheet(count=100)
    canceller = other_connection()

    def cancel_after_three_batches(run: SyncRun) -> None:
        if run.rows_done == 30:
            with canceller.cursor() as cursor:  # another session, as the console would
                cursor.execute(
                    "UPDATE sync_audit_logs SET cancel_requested = true WHERE id = %s", [run.pk]
                )

    try:
        run = run_ingest("buyers", batch_size=10, progress=cancel_after_three_batches)
    finally:
        canceller.close()
    assert (run.status, run.rows_done, run.created) == ("cancelled", 40, 40)
    assert Buyer.objects.count() == 40
    assert RecordLog.objects.filter(run_id=run.pk).count() == 40
    assert request_cancel(run.pk) is False  # no longer active
    resumed = run_ingest("buyers")
    assert (resumed.created, resumed.unchanged) == (60, 40)


def test_cancel_command(buyers_sheet) -> None:
    with pytest.raises(CommandError, match="is not running"):
        call_command("sync_ingest", "buyers", "--cancel", "999", stdout=StringIO())
    run = SyncRun.objects.create(source="buyers", target="buyers.buyer", status="running")
    out = StringIO()
    call_command("sync_ingest", "buyers", "--cancel", str(run.pk), stdout=out)
    assert "cancel requested" in out.getvalue()
    # That run's process is gone: the next run (holding the lock) marks it abandoned.
    buyers_sheet(count=3)
    run_ingest("buyers")
    run.refresh_from_db()
    assert (run.status, run.message) == ("failed", "abandoned: the process running it stopped")


def test_terminated_backend_mid_run_is_reconnected_and_the_run_completes(
    buyers_sheet, redis_raw_client
) -> None:
    buyers_sheet(count=60)
    killed = []

    def kill_after_second_batch(run: SyncRun) -> None:
        if run.rows_done == 20 and not killed:
            killed.append(connection.connection.info.backend_pid)
            terminate_own_backend()

    run = run_ingest("buyers", batch_size=10, progress=kill_after_second_batch)
    assert killed
    assert (run.status, run.created, run.rows_done) == ("succeeded", 60, 60)
    assert Buyer.objects.count() == 60
    assert ErrorLog.objects.filter(run_id=run.pk, code="reconnected").count() == 1
    assert run.errors_by_category == {"database": 1}
    # The lock was taken again on the new connection and released at the end.
    with connection.cursor() as cursor:
        cursor.execute(  # this database's: another xdist worker's locks are not ours
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
        assert cursor.fetchone()[0] == 0
    # Every stored row went through to Redis on its batch's commit.
    keys = [cache_key("buyers.buyer", pk) for pk in Buyer.objects.values_list("pk", flat=True)]
    assert sum(redis_raw_client.exists(key) for key in keys) == 60
    assert not SyncIntent.objects.filter(model="buyers.buyer").exists()


def test_row_lock_timeout_goes_to_the_retry_queue_then_permanent_failure(
    buyers_sheet, settings, caplog
) -> None:
    settings.SYNC_INGEST_LOCK_TIMEOUT_MS = 100
    settings.SYNC_INGEST_RETRY_MAX_ATTEMPTS = 2
    rows = list(buyer_rows(10, 0))
    buyers_sheet(rows)
    run_ingest("buyers")
    rows[2][8] = "edited while locked"
    rows[3][8] = "edited too"
    buyers_sheet(rows)
    holder = other_connection()
    holder.set_autocommit(False)
    try:
        with holder.cursor() as cursor:
            cursor.execute("SELECT 1 FROM buyers WHERE buyer_number = 'B-00003' FOR UPDATE")
        run = run_ingest("buyers")
        assert (run.status, run.updated, run.failed) == ("partial", 1, 1)
        entry = RecordRetry.objects.get()
        assert (entry.natural_key, entry.category, entry.attempts, entry.status) == (
            "B-00003",
            "database",
            1,
            "pending",
        )
        assert ErrorLog.objects.get(run_id=run.pk, row_number=4).retryable

        # Still locked: the retry fails again, its second attempt makes it permanent.
        call_command("sync_retry_records", "--all", stdout=StringIO())
        entry.refresh_from_db()
        assert (entry.attempts, entry.status) == (2, "permanently_failed")
        assert any("ALERT permanent_failures [buyers]" in r.getMessage() for r in caplog.records)
        assert SyncAlert.objects.filter(alert_type="permanent_failures", source="buyers").exists()
    finally:
        holder.rollback()
        holder.close()
    # The lock is gone: a run stores the row and the entry leaves the queue.
    run = run_ingest("buyers")
    assert run.updated == 1
    assert Buyer.objects.get(buyer_number="B-00003").status == "edited while locked"
    assert not RecordRetry.objects.exists()


def test_retry_run_stores_due_rows_and_drops_rows_gone_from_the_sheet(buyers_sheet) -> None:
    path = buyers_sheet(count=5)
    for key in ("B-00002", "B-99999"):
        RecordRetry.objects.create(
            source="buyers",
            natural_key=key,
            location=str(path),
            category="database",
            next_retry_at="2000-01-01T00:00Z",
        )
    out = StringIO()
    call_command("sync_retry_records", stdout=out)
    assert "1 retry run(s); queue now: empty" in out.getvalue()
    assert list(Buyer.objects.values_list("buyer_number", flat=True)) == ["B-00002"]
    assert SyncRun.objects.get().trigger == "retry"


@pytest.fixture
def redis_raw_client():
    import redis
    from django.conf import settings

    client = redis.Redis.from_url(settings.SYNC_REDIS_URL, socket_timeout=2)
    yield client
    client.close()


def test_logs_of_a_run_carry_no_pii(buyers_sheet, caplog) -> None:
    rows = list(buyer_rows(3, 0))
    rows[0][0] = "someone@example.com"  # PII typed into the key column
    buyers_sheet(rows)
    caplog.set_level(logging.INFO)
    run = run_ingest("buyers")
    error = ErrorLog.objects.get(run_id=run.pk)
    assert "example.com" not in error.natural_key + error.reason
    assert "example.com" not in "".join(
        RecordLog.objects.filter(run_id=run.pk).values_list("natural_key", flat=True)
    )
    assert all("@" not in r.getMessage() for r in caplog.records)
    assert Path(connection.settings_dict["NAME"])  # the run used the test database
    with transaction.atomic():
        assert Buyer.objects.count() == 2


def test_write_through_reads_nothing_again_and_lock_timeout_is_scoped_to_the_run(
    buyers_sheet, redis_raw_client, monkeypatch
) -> None:
    from sync.cache import outbox, store

    buyers_sheet(count=30)
    intent_reads, cache_writes = [], []
    read, write = outbox.intent_states, store.write_many

    def counted_read(spec, pks, *args, **kwargs):  # our own functions, counted (real SQL)
        intent_reads.append(len(list(pks)))
        return read(spec, pks, *args, **kwargs)

    def counted_write(writes, **kwargs):
        cache_writes.append(len(writes))
        return write(writes, **kwargs)

    # The batch statement answers what Redis needs: the write-through reads nothing again,
    # and each batch is one pipelined Redis write.
    monkeypatch.setattr(outbox, "intent_states", counted_read)
    monkeypatch.setattr(store, "write_many", counted_write)
    seen = []

    def lock_timeout(run: SyncRun) -> None:
        with connection.cursor() as cursor:
            cursor.execute("SHOW lock_timeout")
            seen.append(cursor.fetchone()[0])

    lock_timeout(None)
    run = run_ingest("buyers", batch_size=10, progress=lock_timeout)
    lock_timeout(None)
    assert seen == ["0", "5s", "5s", "5s", "0"]  # SYNC_INGEST_LOCK_TIMEOUT_MS, then restored
    assert (run.created, intent_reads, cache_writes) == (30, [], [10, 10, 10])
    keys = [cache_key("buyers.buyer", pk) for pk in Buyer.objects.values_list("pk", flat=True)]
    assert sum(redis_raw_client.exists(key) for key in keys) == 30
    assert not SyncIntent.objects.filter(model="buyers.buyer").exists()


def test_redis_down_during_a_run_leaves_every_written_row_an_intent_that_replay_completes(
    sellers_sheet, redis_control, redis_raw_client
) -> None:
    from sellers.models import Property, Seller
    from sync.cache import connection as cache_connection
    from sync.cache.replay import replay_pending

    sellers_sheet(count=25)  # parents and children: both intents come from the statement
    redis_control.kill()
    try:
        run = run_ingest("sellers", batch_size=10)
    finally:
        redis_control.start()
    assert (run.status, run.created) == ("succeeded", 25)  # Redis never fails a write (I1)
    # The statement enqueued every written row's intent in the batch's transaction (I3).
    pending = set(SyncIntent.objects.values_list("model", "object_pk"))
    assert pending == {
        ("sellers.seller", str(pk)) for pk in Seller.objects.values_list("pk", flat=True)
    } | {("sellers.property", str(pk)) for pk in Property.objects.values_list("pk", flat=True)}
    assert not SyncIntent.objects.filter(epoch__isnull=True).exists()  # all tagged (I9)
    cache_connection.breaker.reset()
    replay_pending(include_not_due=True)
    assert not SyncIntent.objects.exists()
    keys = [cache_key("sellers.seller", pk) for pk in Seller.objects.values_list("pk", flat=True)]
    assert sum(redis_raw_client.exists(key) for key in keys) == 25


def test_a_key_written_again_by_the_next_batch_keeps_its_intent_until_written_through(
    buyers_sheet, redis_raw_client
) -> None:
    rows = list(buyer_rows(20, 0))
    rows[14] = [rows[4][0], *rows[14][1:]]  # row 16 repeats row 6's key: the next batch
    rows[14][8] = "a later status"
    buyers_sheet(rows)
    run = run_ingest("buyers", batch_size=10)
    # The duplicate rule: the pre-scan finds the key on both rows, and neither
    # is written; so no batch writes a key an earlier batch wrote. (That the statement never
    # deletes an intent it enqueues again is the next test's, on the statement itself.)
    assert (run.created, run.updated, run.failed, run.errors_by_category) == (
        18,
        0,
        2,
        {"conflict": 2},
    )
    assert not Buyer.objects.filter(buyer_number=rows[4][0]).exists()
    other = Buyer.objects.get(buyer_number=rows[5][0])
    entry = redis_raw_client.hgetall(cache_key("buyers.buyer", other.pk))
    assert int(entry[b"v"]) == other.version
    assert not SyncIntent.objects.filter(model="buyers.buyer").exists()


def test_the_statement_never_deletes_an_intent_it_enqueues_again(buyers_sheet) -> None:
    from sync.cache.outbox import RowState
    from sync.ingest.schema import column_limits
    from sync.ingest.source_definitions import get_source
    from sync.ingest.upsert import BatchWriter, Progress
    from sync.ingest.validation import RowValidator
    from tests.ingest.conftest import BUYER_HEADERS

    config = get_source("buyers")
    validator = RowValidator(config, column_limits(config), BUYER_HEADERS)
    writer = BatchWriter(config, validator)
    run = SyncRun.objects.create(
        source="buyers", target="buyers.buyer", location="x", batch_size=10
    )
    first, second = (list(buyer_rows(2, 0, seed=seed)) for seed in (1, 2))
    valid = [validator.validate(n, cells)[0] for n, cells in enumerate(first + second, 2)]
    with transaction.atomic():
        answer = writer.write(valid[:2], run_id=run.pk, progress=Progress(2, 0, 0, 0, 0, run.pk))
    done = [RowState(s.label, s.pk, s.version, None) for s in answer.states]  # as if written
    with transaction.atomic():  # the same two keys, changed: their intents are enqueued again
        again = writer.write(
            valid[2:], run_id=run.pk, settle=done, progress=Progress(4, 2, 0, 0, 0, run.pk)
        )
    assert [r.action for r in again.rows] == ["updated", "updated"]
    kept = dict(SyncIntent.objects.filter(model="buyers.buyer").values_list("object_pk", "version"))
    assert kept == {s.pk: s.version for s in again.states}  # the newer versions, not deleted
    run.refresh_from_db()
    assert (run.rows_done, run.created, run.updated) == (4, 2, 2)

"""A run's PostgreSQL backend terminated at the awkward moments: inside a batch's statement,
while its rows are retried one by one, before verification and just before the lock is
released. Each time the run reconnects (taking the lock again where it needs it) and ends
with consistent data; nothing is mocked: backends are really terminated."""

from __future__ import annotations

import logging
import threading
import time

import pytest
from django.db import connection, connections

from buyers.models import Buyer
from devtools.sheets import buyer_rows
from sync.ingest.pipeline import run_ingest
from sync.models import ErrorLog, SyncRun

pytestmark = pytest.mark.django_db(transaction=True)


def _terminate(*pids: int) -> None:
    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            for pid in pids:
                cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    finally:
        other.close()


def _lock_holder(key: str):
    """A second session holding ``key``'s row lock (its transaction left open)."""
    holder = connections.create_connection("default")
    holder.set_autocommit(False)
    with holder.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
        cursor.execute("SELECT 1 FROM buyers WHERE buyer_number = %s FOR UPDATE", [key])
    return holder, pid


def _kill_on_lock_wait(run_pid: list[int], holder_pid: int, waits: int, done: list) -> None:
    """In a thread: when the run's backend waits on a row lock for the ``waits``-th time
    (a new statement each time), terminate it, then the holder (which frees the row)."""
    watcher = connections.create_connection("default")
    seen: set[object] = set()
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            with watcher.cursor() as cursor:
                cursor.execute(
                    "SELECT pid, query_start FROM pg_stat_activity"
                    " WHERE wait_event_type = 'Lock' AND pid <> %s"
                    " AND datname = current_database()",  # not another xdist worker's
                    [holder_pid],
                )
                for pid, started in cursor.fetchall():
                    seen.add(started)
                    if len(seen) == waits:
                        run_pid.append(pid)
                        _terminate(pid, holder_pid)
                        done.append(True)
                        return
            time.sleep(0.005)
    finally:
        watcher.close()


def _edited_sheet(buyers_sheet) -> None:
    rows = list(buyer_rows(10, 0))
    buyers_sheet(rows)
    run_ingest("buyers")
    rows[2][8] = "edited while locked"
    buyers_sheet(rows)


@pytest.mark.parametrize(
    ("lock_timeout", "waits"),
    [
        (30_000, 1),  # terminated inside the batch statement
        (300, 2),  # the batch timed out; terminated inside the row-by-row retry
    ],
)
def test_backend_terminated_while_a_batch_waits_is_reconnected_and_the_batch_retried(
    buyers_sheet, settings, caplog, lock_timeout, waits
) -> None:
    settings.SYNC_INGEST_LOCK_TIMEOUT_MS = lock_timeout
    _edited_sheet(buyers_sheet)
    holder, holder_pid = _lock_holder("B-00003")
    killed: list[int] = []
    done: list[bool] = []
    thread = threading.Thread(target=_kill_on_lock_wait, args=(killed, holder_pid, waits, done))
    thread.start()
    try:
        run = run_ingest("buyers")
    finally:
        thread.join(timeout=60)
        holder.close()
    assert done, "the run never waited on the locked row"
    assert (run.status, run.updated, run.unchanged, run.failed) == ("succeeded", 1, 9, 0)
    assert Buyer.objects.get(buyer_number="B-00003").status == "edited while locked"
    assert ErrorLog.objects.filter(run_id=run.pk, code="reconnected").count() == 1
    assert any("connection lost" in r.getMessage() for r in caplog.records)
    assert killed[0] != connection.connection.info.backend_pid


def test_backend_terminated_after_the_last_batch_reconnects_for_verification(buyers_sheet) -> None:
    buyers_sheet(count=20)

    def kill_after_last_batch(run: SyncRun) -> None:
        if run.rows_done == 20:
            _terminate(connection.connection.info.backend_pid)

    run = run_ingest("buyers", batch_size=10, progress=kill_after_last_batch)
    # The run's own row is updated on a new connection without the lock; verification
    # needs the lock, and takes it again.
    assert (run.status, run.created, run.gaps) == ("succeeded", 20, 0)
    assert run.errors_by_category == {"database": 1}


class _KillAtFinish(logging.Handler):
    """Terminates the run's backend when the run logs its summary: after its last statement,
    before it releases the lock."""

    def emit(self, record: logging.LogRecord) -> None:
        if "succeeded" in record.getMessage():
            _terminate(connection.connection.info.backend_pid)


def test_backend_gone_when_the_lock_is_released(buyers_sheet) -> None:
    buyers_sheet(count=3)
    handler = _KillAtFinish(logging.INFO)
    logger = logging.getLogger("sync.ingest.pipeline.run")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        run = run_ingest("buyers")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert (run.status, run.created) == ("succeeded", 3)  # read on a new connection
    with connection.cursor() as cursor:  # the lock went with the terminated session
        cursor.execute(  # this database's: another xdist worker's locks are not ours
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
        assert cursor.fetchone()[0] == 0
    assert run_ingest("buyers").unchanged == 3


def test_a_database_that_stays_away_fails_the_run_clearly(buyers_sheet, settings) -> None:
    settings.SYNC_INGEST_DB_RETRIES = 0  # no reconnect allowed: the first loss is final
    settings.SYNC_INGEST_LOCK_TIMEOUT_MS = 30_000
    _edited_sheet(buyers_sheet)
    holder, holder_pid = _lock_holder("B-00003")
    done: list[bool] = []
    thread = threading.Thread(target=_kill_on_lock_wait, args=([], holder_pid, 1, done))
    thread.start()
    try:
        run = run_ingest("buyers")
    finally:
        thread.join(timeout=60)
        holder.close()
    assert done
    assert run.status == "failed"
    assert "terminat" in run.message  # PostgreSQL's own words, redacted
    assert Buyer.objects.get(buyer_number="B-00003").status != "edited while locked"
    assert not ErrorLog.objects.filter(run_id=run.pk, code="reconnected").exists()

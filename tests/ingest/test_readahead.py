"""Reading ahead: a run's next batches are read and validated on a thread of their own while
the current one is written. The rows, their order and their errors are the same as in turn;
a run that stops early stops the reading; dry runs count from their answer."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from buyers.models import Buyer
from devtools.sheets import buyer_rows
from sync.ingest.pipeline import run_ingest
from sync.ingest.pipeline.readahead import ReadAhead, in_turn
from sync.models import RecordLog

pytestmark = pytest.mark.django_db(transaction=True)


class Batches:
    """Ten batches of three numbers; ``fail_at`` raises instead of that batch; ``closed``
    records that the reader closed its source."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.fail_at = fail_at
        self.closed = threading.Event()
        self.read = 0

    def __iter__(self):
        return self

    def __next__(self) -> list[int]:
        if self.read == 10:
            raise StopIteration
        if self.read == self.fail_at:
            msg = f"row {self.read * 3 + 2}: not UTF-8"
            raise ValueError(msg)
        self.read += 1
        return [self.read * 3 + i for i in range(3)]

    def close(self) -> None:
        self.closed.set()


@pytest.mark.django_db(transaction=False)
def test_batches_come_in_order_prepared_and_the_source_is_closed() -> None:
    source = Batches()
    with ReadAhead(source, sum) as batches:
        got = list(batches)
    assert got == list(in_turn(Batches(), sum))
    assert [total for _, total in got] == [sum(b) for b, _ in got]
    assert source.closed.is_set()


@pytest.mark.django_db(transaction=False)
def test_an_error_in_reading_comes_where_its_batch_would_have() -> None:
    received = []
    with (
        pytest.raises(ValueError, match="row 14: not UTF-8"),
        ReadAhead(Batches(fail_at=4), sum) as batches,
    ):
        for batch, _ in batches:
            received.append(batch)
    assert len(received) == 4  # the batches before the broken one, all of them


@pytest.mark.django_db(transaction=False)
def test_a_consumer_that_stops_early_stops_the_reader() -> None:
    source = Batches()
    reader = ReadAhead(source, sum, depth=2)
    first = next(iter(reader))
    reader.close()
    assert first[0] == [3, 4, 5]
    assert not reader._thread.is_alive()
    assert source.closed.is_set()
    assert source.read < 10  # it did not read the whole source after the consumer left


@pytest.mark.django_db(transaction=False)
def test_a_source_without_close_is_read_whole() -> None:
    with ReadAhead(iter([[1], [2, 3]]), len) as batches:
        assert list(batches) == [([1], 1), ([2, 3], 2)]


def test_a_dry_run_counts_created_updated_and_unchanged_rows(buyers_sheet) -> None:
    rows = list(buyer_rows(30, 0))
    buyers_sheet(rows)
    run_ingest("buyers", batch_size=7)
    rows[3][1] = "A new name"
    rows.append(list(buyer_rows(31, 0))[-1])
    buyers_sheet(rows)
    dry = run_ingest("buyers", dry_run=True, batch_size=7)
    assert (dry.created, dry.updated, dry.unchanged, dry.failed) == (1, 1, 29, 0)
    assert Buyer.objects.count() == 30
    assert Buyer.objects.get(buyer_number=rows[3][0]).name != "A new name"
    assert RecordLog.objects.filter(run_id=dry.pk).count() == 31


def test_a_real_run_counts_in_its_statement_across_batches(buyers_sheet) -> None:
    rows = list(buyer_rows(25, 0))
    buyers_sheet(rows[:20])
    run_ingest("buyers", batch_size=6)
    rows[0][1] = "Renamed"
    buyers_sheet(rows)
    run = run_ingest("buyers", batch_size=6)
    assert (run.created, run.updated, run.unchanged, run.rows_done) == (5, 1, 19, 25)
    actions = dict(RecordLog.objects.filter(run_id=run.pk).values_list("natural_key", "action"))
    assert actions[rows[0][0]] == "updated"
    assert sum(action == "unchanged" for action in actions.values()) == 19


def test_a_batch_that_writes_no_row_commits_without_waiting_for_its_wal_flush(
    buyers_sheet, monkeypatch
) -> None:
    """Each batch statement answers the synchronous_commit it committed with: "off" only for
    a batch that wrote no row (its logs and progress; nothing in Redis depends on it)."""
    from sync.ingest import upsert

    commits: list[str] = []
    real = upsert.prepared_fetchall

    def recording(conn, sql, params):
        found = real(conn, sql, params)
        commits.append(found[0][-1])
        return found

    monkeypatch.setattr(upsert, "prepared_fetchall", recording)
    rows = list(buyer_rows(20, 0))
    buyers_sheet(rows)
    with connection.cursor() as cursor:  # the test servers may run with it off altogether
        cursor.execute("SET synchronous_commit = on")
    try:
        run_ingest("buyers", batch_size=5)
        assert commits == ["on"] * 4
        commits.clear()
        rows[7][1] = "Edited"  # in the second batch
        buyers_sheet(rows)
        run = run_ingest("buyers", batch_size=5)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET synchronous_commit")
    assert commits == ["off", "on", "off", "off"]
    assert (run.updated, run.unchanged) == (1, 19)
    assert Buyer.objects.get(buyer_number=rows[7][0]).name == "Edited"

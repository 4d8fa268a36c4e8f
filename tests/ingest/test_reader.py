"""The reader process: a large run's batches read, validated and encoded in a second process.
A run gives the same rows, logs, errors and status with it as without it (CSV, and a
workbook read from its spool); an error it meets fails the run with the same message; a
reader that dies fails the run saying so instead of hanging; a cancelled run stops it; small
runs and partial ones stay in the run's own process."""

from __future__ import annotations

import importlib
import multiprocessing
import pickle
from pathlib import Path

import pytest

from buyers.models import Buyer
from devtools.sheets import BUYER_HEADERS, buyer_rows, write_xlsx
from sync.ingest.exceptions import IngestError, SourceFileError
from sync.ingest.pipeline import reader, request_cancel, run_ingest
from sync.ingest.pipeline.reader import ReaderProcess, ReadJob, SpoolFile, run_job
from sync.ingest.pipeline.spool import SpooledSource
from sync.ingest.sources import CsvSource
from sync.models import ErrorLog, RecordLog, SyncRun

pytestmark = pytest.mark.django_db(transaction=True)


def readers() -> list[multiprocessing.Process]:
    return [p for p in multiprocessing.active_children() if p.name == "sync-reader"]


def outcome(run: SyncRun) -> tuple:
    records = sorted(
        RecordLog.objects.filter(run_id=run.pk).values_list("row_number", "natural_key", "action")
    )
    errors = sorted(
        ErrorLog.objects.filter(run_id=run.pk).values_list("row_number", "code", "reason")
    )
    stored = sorted(Buyer.objects.values_list("buyer_number", "name", "email", "budget"))
    return run.status, run.message, records, errors, stored


def sheet_with_errors() -> list[list[str]]:
    rows = [list(row) for row in buyer_rows(60, 0)]
    rows[4][0] = rows[9][0]  # a duplicate key: neither row stored
    rows[20][7] = "not a number"  # a validation error
    rows[30][0] = ""  # no key
    rows.insert(40, list(rows[39]))  # the same row twice in one batch: superseded
    return rows


@pytest.mark.parametrize("kind", ["csv", "xlsx"])
def test_a_run_with_the_reader_process_ends_as_one_without(
    settings, buyers_sheet, tmp_path, kind, caplog
) -> None:
    rows = sheet_with_errors()
    if kind == "csv":
        path = buyers_sheet(rows)
    else:
        path = write_xlsx(tmp_path / "buyers.xlsx", BUYER_HEADERS, rows)
    found = {}
    for least in (0, 1):
        settings.SYNC_INGEST_READER_PROCESS_ROWS = least
        Buyer.objects.all().delete()
        caplog.clear()
        run = run_ingest("buyers", file=str(path), batch_size=7)
        found[least] = outcome(run)
        assert ("batches read in a second process" in caplog.text) == bool(least)
        assert run.phase_ms["validate"] > 0
    assert found[1] == found[0]
    status, _message, records, errors, _stored = found[1]
    assert status == SyncRun.Status.PARTIAL
    assert len(records) == 61
    assert {code for _n, code, _r in errors} >= {"duplicate_key", "required"}
    assert not readers()


def test_small_runs_and_runs_of_some_keys_stay_in_the_run_process(
    settings, buyers_sheet, caplog
) -> None:
    settings.SYNC_INGEST_READER_PROCESS_ROWS = 21
    buyers_sheet(count=20)
    assert run_ingest("buyers").status == SyncRun.Status.SUCCEEDED
    settings.SYNC_INGEST_READER_PROCESS_ROWS = 1
    run = run_ingest("buyers", only_keys=["B-00001"])
    assert run.status == SyncRun.Status.SUCCEEDED
    assert "second process" not in caplog.text


def test_an_error_the_reader_meets_fails_the_run_as_in_the_run_process(
    settings, buyers_sheet
) -> None:
    """The file is cut short between the pre-scan and the load: the reader's read fails."""
    path = buyers_sheet(count=40)
    whole = path.read_bytes()

    def cut() -> None:
        path.write_bytes(whole + b'B-09999,"never closed\n')

    messages = []
    for least in (0, 1):
        settings.SYNC_INGEST_READER_PROCESS_ROWS = least
        path.write_bytes(whole)
        run = run_ingest("buyers", batch_size=5, before_load=cut)
        assert run.status == SyncRun.Status.FAILED
        messages.append(run.message)
    assert messages[0] == messages[1]
    assert "a quoted cell is not closed" in messages[1]
    assert not readers()


def test_a_reader_that_dies_fails_the_run_saying_so(settings, buyers_sheet) -> None:
    settings.SYNC_INGEST_READER_PROCESS_ROWS = 1
    buyers_sheet(count=300)

    def kill(_run: SyncRun) -> None:
        for process in readers():
            process.kill()

    run = run_ingest("buyers", batch_size=5, progress=kill)
    assert run.status == SyncRun.Status.FAILED
    assert "the reader process stopped without finishing (exit code -9)" in run.message
    assert Buyer.objects.count() < 300
    assert not readers()


def test_a_cancelled_run_stops_its_reader(settings, buyers_sheet) -> None:
    settings.SYNC_INGEST_READER_PROCESS_ROWS = 1
    buyers_sheet(count=300)
    seen = []

    def cancel(run: SyncRun) -> None:
        seen.append([p.pid for p in readers()])
        request_cancel(run.pk)

    run = run_ingest("buyers", batch_size=5, progress=cancel)
    assert run.status == SyncRun.Status.CANCELLED
    assert seen[0]  # it ran in a reader process …
    assert not readers()  # … which is gone


def test_a_reader_that_does_not_stop_is_killed(monkeypatch, buyers_sheet, tmp_path) -> None:
    path = buyers_sheet(count=2000)
    source = CsvSource(str(path))
    source.prescan()
    from sync.ingest.source_definitions import get_source
    from sync.ingest.validation import RowValidator

    config = get_source("buyers")
    validator = RowValidator(config, _columns(config), source.headers())
    monkeypatch.setattr(reader, "POLL_SECONDS", 0.001)  # it looks while the reader starts
    process = ReaderProcess(ReadJob(source, config, validator, {}, 5), depth=1)
    first = next(iter(process))
    assert first[0] is None and first[1].valid
    monkeypatch.setattr(reader, "STOP_SECONDS", 0.0)  # it waits to queue more: never stops
    process.close()
    assert process.process.exitcode == -9


def _columns(config) -> dict:
    from sync.ingest.schema import column_limits

    return column_limits(config)


class Unpicklable(Exception):  # noqa: N818 - a test's error
    def __init__(self) -> None:
        super().__init__("cannot be sent")
        self.callback = lambda: None


class KeywordOnly(Exception):  # noqa: N818 - pickles, and cannot be unpickled
    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


class BrokenSource:
    def __init__(self, error: type[Exception]) -> None:
        self.error = error

    def rows(self):
        if self.error is KeywordOnly:
            msg = "cannot be read back"
            raise KeywordOnly(msg, code="x")
        raise self.error


def test_the_readers_work_in_this_process_errors_stop_and_the_spool(buyers_sheet, tmp_path) -> None:
    """``run_job`` is what the reader runs; here in this process (coverage sees it)."""
    from sync.ingest.source_definitions import get_source
    from sync.ingest.validation import RowValidator

    path = buyers_sheet(count=12)
    source = CsvSource(str(path))
    source.prescan()
    config = get_source("buyers")
    validator = RowValidator(config, _columns(config), source.headers())
    sent: list = []
    run_job(pickle.dumps(ReadJob(source, config, validator, {}, 5)), sent.append, lambda: False)
    messages = [pickle.loads(m) for m in sent]  # noqa: S301 - this test's own
    assert [kind for kind, _ in messages] == ["batch", "batch", "batch", "done"]
    stats = messages[-1][1]
    assert (stats.batches, stats.read_digest is not None, stats.peak_rss_kb > 0) == (3, True, True)

    sent.clear()
    run_job(pickle.dumps(ReadJob(source, config, validator, {}, 5)), sent.append, lambda: True)
    assert sent == []  # asked to stop: nothing more sent

    for error, text in ((Unpicklable, "cannot be sent"), (KeywordOnly, "cannot be read back")):
        sent.clear()
        run_job(
            pickle.dumps(ReadJob(BrokenSource(error), config, validator, {}, 5)),
            sent.append,
            lambda: False,
        )
        kind, raised = pickle.loads(sent[0])  # noqa: S301 - this test's own
        assert kind == "error"
        assert isinstance(raised, IngestError)
        assert str(raised) == f"the reader process failed: {error.__name__}: {text}"
    # A file error reaches the run as raised, with its code and line.
    raised = pickle.loads(pickle.dumps(SourceFileError("cut short", code="unreadable", line=7)))  # noqa: S301
    assert (str(raised), raised.code, raised.line) == ("cut short", "unreadable", 7)
    # The forkserver's preload, imported where Django is set up, does nothing.
    importlib.import_module("sync.ingest.reader_preload")

    spooled = SpooledSource(source)
    with pytest.raises(RuntimeError, match="not spooled"):
        spooled.path()
    list(spooled.spool(source.rows()))
    assert list(SpoolFile(spooled.path()).rows()) == list(source.rows())
    spooled.close()
    assert Path(tmp_path).exists()


def test_a_large_file_starts_the_readers_server_ahead(settings, tmp_path) -> None:
    settings.SYNC_INGEST_READER_PROCESS_ROWS = 20_000
    big = tmp_path / "big.csv"
    big.write_bytes(b"x" * reader.WARM_BYTES)
    small = tmp_path / "small.csv"
    small.write_bytes(b"x")
    assert reader.warm_up("csv", str(big))
    assert not reader.warm_up("csv", str(small))
    assert not reader.warm_up("csv", str(tmp_path / "gone.csv"))
    assert not reader.warm_up("sheets", "a-spreadsheet-id")
    settings.SYNC_INGEST_READER_PROCESS_ROWS = 0
    assert not reader.warm_up("csv", str(big))
    reader._start_server()  # what the thread runs: the server is up (or was already)

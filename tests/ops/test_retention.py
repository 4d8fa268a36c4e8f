"""Retention: expired log rows are archived to gzip JSON Lines and deleted, in batches,
idempotently; a process killed mid-archive loses and duplicates nothing."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connections
from django.utils import timezone

from sync.models import ErrorLog, RecordLog, SecurityEvent, SyncRun
from sync.ops.retention import (
    LOCK_KEY,
    ArchiveBusyError,
    archive_files,
    archive_logs,
    read_archive,
)
from sync.ops.source_settings import config_update
from tests.ops.conftest import make_run
from tests.subprocesses import run_python


def _expired(runs: int = 5, rows: int = 7) -> dict[str, list[dict]]:
    """Runs, record logs, error logs and security events from 100 days ago, plus fresh ones
    of each."""
    old = timezone.now() - timedelta(days=100)
    for n in range(runs):
        run = make_run(
            ago=timedelta(days=100, minutes=n), phase_ms={"fetch": n}, message="ünïcode ✓"
        )
        RecordLog.objects.bulk_create(
            RecordLog(
                run_id=run.pk,
                row_number=r + 2,
                natural_key=f"B-{n:03}{r:03}",
                action="created",
                created_at=old,
            )
            for r in range(rows)
        )
        ErrorLog.objects.create(
            run_id=run.pk,
            source="probe",
            category="schema",
            reason="too long",
            created_at=old,
            value_length=80,
        )
    fresh = make_run()
    RecordLog.objects.create(run_id=fresh.pk, row_number=2, action="created")
    ErrorLog.objects.create(run_id=fresh.pk, source="probe", category="schema", reason="x")
    make_run(status=SyncRun.Status.RUNNING, ago=timedelta(days=100))  # never archived
    SecurityEvent.objects.bulk_create(
        SecurityEvent(
            kind="login_failed",
            ip="192.0.2.7",
            created_at=old - timedelta(hours=n),
            details={"unknown_username": True},
        )
        for n in range(3)
    )
    SecurityEvent.objects.create(kind="login", username="fresh")
    cutoff = timezone.now() - timedelta(days=90)
    return {
        model._meta.db_table: _json(model.objects.filter(created_at__lt=cutoff))
        for model in (RecordLog, ErrorLog, SyncRun, SecurityEvent)
    }


def _json(queryset) -> list[dict]:
    rows = queryset.exclude(status="running") if queryset.model is SyncRun else queryset
    return json.loads(json.dumps(list(rows.order_by("pk").values()), cls=DjangoJSONEncoder))


def _archived(directory: Path, table: str) -> list[dict]:
    return [row for path in archive_files(directory, table) for row in read_archive(path)]


@pytest.mark.django_db
def test_the_archive_round_trips_and_the_rows_are_gone(tmp_path) -> None:
    expected = _expired()
    progress = []
    counts = archive_logs(
        directory=tmp_path, batch_size=4, progress=lambda table, n: progress.append((table, n))
    )
    assert counts == {
        "sync_record_logs": 35,
        "sync_error_logs": 5,
        "sync_audit_logs": 5,
        "sync_security_events": 3,
    }
    for table, rows in expected.items():
        assert _archived(tmp_path, table) == rows
    assert len(archive_files(tmp_path, "sync_record_logs")) == 9  # batches of four
    assert ("sync_audit_logs", 5) in progress
    assert progress[-1] == ("sync_security_events", 3)
    assert RecordLog.objects.count() == 1
    assert ErrorLog.objects.count() == 1
    assert SyncRun.objects.count() == 2  # the fresh one and the one still running
    assert list(SecurityEvent.objects.values_list("username", flat=True)) == ["fresh"]
    assert archive_logs(directory=tmp_path) == dict.fromkeys(expected, 0)  # idempotent


@pytest.mark.django_db
def test_retention_days_come_from_the_engine_configuration(tmp_path, settings) -> None:
    _expired(runs=1, rows=1)
    config_update(source="engine", retention_days=120)
    assert archive_logs()["sync_audit_logs"] == 0
    config_update(source="engine", retention_days=30)
    assert archive_logs()["sync_audit_logs"] == 1
    assert archive_files(Path(settings.SYNC_ARCHIVE_DIR), "sync_audit_logs")


@pytest.mark.django_db
def test_a_leftover_partial_file_is_dropped(tmp_path) -> None:
    expected = _expired(runs=1, rows=3)
    folder = tmp_path / "sync_record_logs"
    folder.mkdir()
    (folder / "sync_record_logs-00000001.jsonl.gz.tmp").write_bytes(b"\x1f\x8b half")
    archive_logs(directory=tmp_path)
    assert _archived(tmp_path, "sync_record_logs") == expected["sync_record_logs"]
    assert not list(folder.glob("*.tmp"))


@pytest.mark.django_db
def test_only_one_archiver_at_a_time(tmp_path) -> None:
    other = connections.create_connection("default")  # another session holds the lock
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", [LOCK_KEY])
        with pytest.raises(ArchiveBusyError, match="another process is archiving"):
            archive_logs(directory=tmp_path)
        with other.cursor() as cursor:
            # Released now: a closed connection's backend lets go of it a moment later.
            cursor.execute("SELECT pg_advisory_unlock_all()")
    finally:
        other.close()
    assert archive_logs(directory=tmp_path)["sync_audit_logs"] == 0  # free again


KILLER = """
    import os
    from sync.ops.retention import archive_logs
    written = []

    def after_write(path):
        written.append(path)
        if len(written) == {kill_after}:
            os._exit(9)  # killed: the file is complete, its rows are not deleted yet

    archive_logs(directory={directory!r}, batch_size=4, after_write=after_write)
"""


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kill_after", [1, 3, 10])
def test_a_kill_mid_archive_loses_and_duplicates_nothing(tmp_path, kill_after) -> None:
    expected = _expired()
    result = run_python(KILLER.format(kill_after=kill_after, directory=str(tmp_path)))
    assert result.returncode == 9, result.stderr
    left = RecordLog.objects.count() + ErrorLog.objects.count() + SyncRun.objects.count()
    assert left > 4  # it really stopped half way: expired rows are left
    archive_logs(directory=tmp_path, batch_size=4)
    for table, rows in expected.items():
        assert _archived(tmp_path, table) == rows  # every row once, in order
    assert RecordLog.objects.count() == 1
    assert SyncRun.objects.count() == 2


class CrashError(Exception):
    pass


@pytest.mark.django_db
def test_a_batch_interrupted_after_its_file_is_finished_on_the_next_run(tmp_path) -> None:
    expected = _expired(runs=2, rows=5)

    def crash(path: Path) -> None:
        if path.name.endswith("-00000002.jsonl.gz"):
            raise CrashError

    with pytest.raises(CrashError):
        archive_logs(directory=tmp_path, batch_size=4, after_write=crash)
    assert RecordLog.objects.count() == 1 + 10 - 4  # the second file's rows are still here
    archive_logs(directory=tmp_path, batch_size=4)
    assert _archived(tmp_path, "sync_record_logs") == expected["sync_record_logs"]
    assert RecordLog.objects.count() == 1

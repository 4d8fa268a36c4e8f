"""Retention: log rows older than the engine's ``retention_days`` go to gzip JSON Lines files
under ``SYNC_ARCHIVE_DIR`` and are then deleted, in batches.

Crash safety: a batch is written to a temporary file, fsynced, renamed into place (and the
directory fsynced) before its rows are deleted. A kill before the rename leaves a ``.tmp``
that the next run removes (the rows are still in the table); a kill after it leaves a
complete file whose rows the next run deletes before archiving anything else (only the
newest file of a table can be in that state, and a PostgreSQL advisory lock keeps archivers
from running side by side). Nothing is lost and nothing is archived twice.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, models
from django.utils import timezone

from sync.ingest.source_settings import config_for
from sync.models import ErrorLog, RecordLog, SecurityEvent, SyncConfig, SyncRun, SyncUpload

logger = logging.getLogger(__name__)

LOCK_KEY = 0x5359_4E43_4152_4348  # "SYNCARCH"
TABLES: tuple[type[models.Model], ...] = (
    RecordLog,
    ErrorLog,
    SyncRun,  # children first
    SecurityEvent,
)
SUFFIX = ".jsonl.gz"


class ArchiveBusyError(RuntimeError):
    """Another process holds the archive lock."""


def archive_files(directory: Path, table: str) -> list[Path]:
    return sorted((directory / table).glob(f"{table}-*{SUFFIX}"))


def read_archive(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as file:
        return [json.loads(line) for line in file]


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write(path: Path, rows: list[dict]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as raw:
        with gzip.GzipFile(filename="", fileobj=raw, mode="wb") as zipped:
            for row in rows:
                zipped.write(json.dumps(row, cls=DjangoJSONEncoder).encode() + b"\n")
        raw.flush()
        os.fsync(raw.fileno())
    tmp.rename(path)
    _fsync_dir(path.parent)


def _recover(model: type[models.Model], folder: Path) -> int:
    """Finish what a killed run left: drop a partial file, delete a complete file's rows."""
    for tmp in folder.glob("*.tmp"):
        tmp.unlink()
    files = archive_files(folder.parent, folder.name)
    if not files:
        return 0
    ids = [row["id"] for row in read_archive(files[-1])]
    deleted, _ = model._default_manager.filter(pk__in=ids).delete()
    if deleted:
        logger.warning(
            "%s: deleted %s row(s) already archived in %s", folder.name, deleted, files[-1].name
        )
    return deleted


def archive_logs(
    *,
    directory: Path | None = None,
    batch_size: int | None = None,
    after_write: Callable[[Path], None] | None = None,
    progress: Callable[[str, int], None] | None = None,
) -> dict[str, int]:
    """Archive and delete the expired rows of each log table; rows archived per table."""
    directory = Path(directory or settings.SYNC_ARCHIVE_DIR)
    batch_size = batch_size or settings.SYNC_ARCHIVE_BATCH
    cutoff = timezone.now() - timedelta(days=config_for(SyncConfig.ENGINE).retention_days)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [LOCK_KEY])
        if not cursor.fetchone()[0]:
            msg = "another process is archiving the sync logs"
            raise ArchiveBusyError(msg)
    try:
        return {
            model._meta.db_table: _archive_table(
                model, directory, cutoff, batch_size, after_write, progress
            )
            for model in TABLES
        }
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [LOCK_KEY])


def _archive_table(
    model: type[models.Model], directory: Path, cutoff, batch_size: int, after_write, progress
) -> int:
    table = model._meta.db_table
    folder = directory / table
    folder.mkdir(parents=True, exist_ok=True)
    _recover(model, folder)
    files = archive_files(directory, table)
    sequence = int(files[-1].name.removesuffix(SUFFIX).rsplit("-", 1)[1]) + 1 if files else 1
    expired = model._default_manager.filter(created_at__lt=cutoff)
    if model is SyncRun:
        expired = expired.exclude(status__in=SyncRun.ACTIVE)
    archived = 0
    while rows := list(expired.order_by("pk").values()[:batch_size]):
        path = folder / f"{table}-{sequence:08d}{SUFFIX}"
        _write(path, rows)
        if after_write is not None:
            after_write(path)
        model._default_manager.filter(pk__in=[row["id"] for row in rows]).delete()
        archived += len(rows)
        sequence += 1
        if progress is not None:
            progress(table, archived)
    if archived:
        logger.info(
            "%s: archived %s row(s) older than %s to %s", table, archived, cutoff.date(), folder
        )
    return archived


def purge_uploads(*, now=None) -> int:
    """Console uploads, by the daily retention task: the encrypted content of
    those older than ``SYNC_UPLOAD_RETENTION_DAYS`` is emptied (who uploaded which file when,
    and the runs it fed, stay for audit); rows older than the logs' retention go, as their
    runs do. Uploads purged or deleted."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.SYNC_UPLOAD_RETENTION_DAYS)
    log_cutoff = now - timedelta(days=config_for(SyncConfig.ENGINE).retention_days)
    deleted, _ = SyncUpload.objects.filter(created_at__lt=log_cutoff).delete()
    purged = SyncUpload.objects.filter(created_at__lt=cutoff, purged_at__isnull=True).update(
        content=b"", purged_at=now
    )
    if purged or deleted:
        logger.info(
            "sync_uploads: purged the content of %d upload(s) older than %s, deleted "
            "%d older than %s",
            purged,
            cutoff.date(),
            deleted,
            log_cutoff.date(),
        )
    return purged + deleted

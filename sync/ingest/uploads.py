"""Sheets uploaded in the console: stored encrypted, previewed by a dry run of the
real pipeline, then run for real only while the preview still holds.

* ``store_upload`` keeps the file's bytes AES-256-GCM encrypted (the engine's keyring, the
  associated data binding the ciphertext to the upload's token) in ``sync_uploads``: the file
  holds PII, and every worker can read it back from PostgreSQL. ``purge_uploads`` (the daily
  retention task) empties the content after ``SYNC_UPLOAD_RETENTION_DAYS``.
* ``preview_upload`` is ``run_ingest(dry_run=True)`` on the file: the same validation, the same
  batch statement (rolled back to a savepoint, so nothing is written and Redis never hears of
  it), the same record and error logs. It then fingerprints what the preview judged: the
  version of every database row the file names (or its absence), the source's mapping and
  its columns' real types.
* ``run_upload`` (a worker, after the operator confirmed) runs the file for real with the
  preview's batch size; under the source's lock, before the first row is written, it checks
  the fingerprint again (``check_preview``): if any of those rows changed since, the run fails
  with ``PreviewOutdatedError`` and writes nothing. So the confirmed run does what the preview
  showed, row for row.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings
from django.db import connection
from django.utils import timezone

from sync.cache import tiers
from sync.cache.declaration import column
from sync.ingest.exceptions import IngestError, SourceConfigError, SyncAlreadyRunningError
from sync.ingest.pipeline import run_ingest, start_run
from sync.ingest.schema import column_limits
from sync.ingest.source_definitions import SourceConfig, get_source
from sync.ingest.sources import source_for
from sync.models import SyncRun, SyncUpload
from sync.redaction import RedactPiiFilter

logger = logging.getLogger(__name__)
logger.addFilter(RedactPiiFilter())

KINDS = {"csv": "csv", "txt": "csv", "xlsx": "xlsx", "xlsm": "xlsx"}


class UploadError(IngestError):
    """An upload that cannot be taken or run: too big, empty, an unknown format, purged."""


class PreviewOutdatedError(UploadError):
    """The database rows a preview judged changed since: its counts no longer hold."""


def _aad_key(upload: SyncUpload) -> str:
    return f"sync_uploads:{upload.token}"


def safe_name(name: str) -> str:
    """The uploaded file's name without any path, at most 255 characters."""
    base = Path(name.replace("\\", "/")).name.strip() or "upload"
    return base[-255:]


def upload_kind(name: str) -> str:
    suffix = Path(name).suffix.lower().lstrip(".")
    if suffix not in KINDS:
        msg = f"{name!r} is not a .csv or .xlsx file: upload the sheet as CSV or XLSX"
        raise UploadError(msg)
    return KINDS[suffix]


def store_upload(*, source: str, name: str, data: bytes, username: str) -> SyncUpload:
    """The file, encrypted, as a new ``previewed``-to-be upload of ``source``."""
    get_source(source)
    name = safe_name(name)
    upload_kind(name)
    limit = settings.SYNC_UPLOAD_MAX_BYTES
    if len(data) > limit:
        raise UploadError(too_big_message(len(data)))
    if not data:
        msg = f"{name} is empty (0 bytes): nothing to preview"
        raise UploadError(msg)
    upload = SyncUpload(
        source=source,
        filename=name,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        token=uuid.uuid4(),
        uploaded_by=username[:150],
    )
    upload.content, upload.key_id = tiers.encrypt(data, key=_aad_key(upload), version=0)
    upload.save()
    return upload


def too_big_message(size: int | None) -> str:
    limit = settings.SYNC_UPLOAD_MAX_BYTES
    got = f"{size:,} bytes" if size is not None else "the file"
    return (
        f"{got} is over the upload limit of {limit:,} bytes (SYNC_UPLOAD_MAX_BYTES): "
        "split the sheet, or have an administrator raise the limit"
    )


def upload_bytes(upload: SyncUpload) -> bytes:
    """The file as uploaded; ``UploadError`` once the retention purged it."""
    if upload.purged_at is not None or not upload.content:
        msg = (
            f"upload {upload.pk} ({upload.filename}) was purged after the retention of "
            f"{settings.SYNC_UPLOAD_RETENTION_DAYS} days: upload the file again"
        )
        raise UploadError(msg)
    return tiers.decrypt(
        bytes(upload.content), key=_aad_key(upload), version=0, key_id=upload.key_id
    )


@contextlib.contextmanager
def upload_file(upload: SyncUpload) -> Iterator[str]:
    """The file decrypted into a private temporary folder (mode 0700) for as long as a run
    reads it (the sources read paths); removed afterwards, whatever happened."""
    folder = tempfile.mkdtemp(prefix="sync-upload-")
    try:
        path = Path(folder) / f"upload.{Path(upload.filename).suffix.lower().lstrip('.')}"
        path.write_bytes(upload_bytes(upload))
        path.chmod(0o600)
        yield str(path)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _described(run: SyncRun, upload: SyncUpload) -> None:
    """The run's location names the upload, not the temporary file it was read from."""
    run.location = f"upload {upload.pk}: {upload.filename}"
    SyncRun.objects.filter(pk=run.pk).update(location=run.location)


def upload_columns(upload: SyncUpload) -> tuple[list[str], list[str]]:
    """(missing, unmapped): the source's mapped headers the file lacks, and the file's headers
    the source does not map (matched after trimming, ignoring case). For a preview the
    pipeline refused before its schema report (a missing column refuses a run)."""
    config = get_source(upload.source)

    def normal(header: str) -> str:
        return " ".join(header.split()).casefold()

    with upload_file(upload) as path:
        kind, location = config.resolve_location(path)
        headers = source_for(config, kind, location).headers()
    present, mapped = {normal(h) for h in headers}, {normal(h) for h in config.columns}
    return (
        [h for h in config.columns if normal(h) not in present],
        [h for h in headers if h.strip() and normal(h) not in mapped],
    )


# --------------------------------------------------------------------------- fingerprint


def _q(name: str) -> str:
    return connection.ops.quote_name(name)


def fingerprint(config: SourceConfig, preview_run_id: int) -> str:
    """What a preview's judgement depends on, as one digest: the source's mapping and rules,
    its columns' real types and limits, and every database row the preview's file names
    (by its record logs): its version and its child's, or its absence."""
    table, key, pk = (
        _q(config.model._meta.db_table),
        _q(column(config.model, config.natural_key)),
        _q(column(config.model)),
    )
    child_join, child_version = "", "'-'"
    if config.child is not None:
        child = config.child.model._meta
        fk = _q(column(config.child.model, config.child.parent_field))
        child_join = f" LEFT JOIN {_q(child.db_table)} c ON c.{fk} = t.{pk}"
        child_version = "coalesce(c.version::text, '-')"
    with connection.cursor() as cursor:
        # NOTE (S608): quoted table and column names of the models; the run id is a parameter.
        cursor.execute(
            f"SELECT md5(string_agg(k.natural_key || ':' || coalesce(t.version::text, '-')"  # noqa: S608
            f" || ':' || {child_version}, ',' ORDER BY k.natural_key)), count(*)"
            f" FROM (SELECT DISTINCT natural_key FROM sync_record_logs"
            f" WHERE run_id = %s AND natural_key <> '') k"
            f" LEFT JOIN {table} t ON t.{key} = k.natural_key{child_join}",
            [preview_run_id],
        )
        rows_digest, keys = cursor.fetchone()
    # Every setting of the source (mapping, rules, declared file format, whatever it grows),
    # and the real column types.
    rules = {
        "config": {f.name: getattr(config, f.name) for f in dataclasses.fields(config)},
        "types": {h: c.type_sql for h, c in column_limits(config).items()},
    }
    text = json.dumps([rules, rows_digest or "", keys], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def check_preview(upload: SyncUpload) -> None:
    """``PreviewOutdatedError`` unless the database still holds what the preview judged."""
    config = get_source(upload.source)
    if upload.preview_run_id is None or fingerprint(config, upload.preview_run_id) != (
        upload.fingerprint
    ):
        msg = (
            f"the database rows upload {upload.pk} ({upload.filename}) touches, or the "
            f"source's mapping, changed since its preview (run {upload.preview_run_id}): "
            "nothing was written; preview the file again and confirm the new preview"
        )
        raise PreviewOutdatedError(msg)


# --------------------------------------------------------------------------- runs


def preview_upload(upload: SyncUpload) -> SyncRun:
    """A dry run of the file through the real pipeline; the upload remembers it and what it
    judged. ``SyncAlreadyRunningError`` when a run holds the source."""
    config = get_source(upload.source)
    with upload_file(upload) as path:
        run = _start(upload, path, dry_run=True, batch_size=None)
        try:
            run = run_ingest(
                upload.source, file=path, dry_run=True, run=run, trigger=SyncRun.Trigger.MANUAL
            )
        except SyncAlreadyRunningError:
            SyncUpload.objects.filter(pk=upload.pk).update(
                preview_run_id=run.pk, fingerprint="", status=SyncUpload.Status.FAILED
            )
            raise
    judged = (
        fingerprint(config, run.pk)
        if run.status in (SyncRun.Status.SUCCEEDED, SyncRun.Status.PARTIAL)
        else ""
    )
    status = SyncUpload.Status.PREVIEWED if judged else SyncUpload.Status.FAILED
    SyncUpload.objects.filter(pk=upload.pk).update(
        preview_run_id=run.pk, fingerprint=judged, status=status
    )
    upload.refresh_from_db()
    return run


def _start(
    upload: SyncUpload,
    path: str,
    *,
    dry_run: bool,
    batch_size: int | None,
) -> SyncRun:
    run = start_run(upload.source, file=path, dry_run=dry_run, batch_size=batch_size)
    _described(run, upload)
    return run


def start_upload_run(upload: SyncUpload) -> SyncRun:
    """The ``pending`` real run of a previewed upload, with the preview's batch size."""
    # An upload is started only once previewed (None would not be found either).
    preview = SyncRun.objects.get(pk=upload.preview_run_id)  # type: ignore[misc]
    run = SyncRun.objects.create(
        source=upload.source,
        target=preview.target,
        trigger=SyncRun.Trigger.MANUAL,
        location=f"upload {upload.pk}: {upload.filename}",
        batch_size=preview.batch_size,
    )
    SyncUpload.objects.filter(pk=upload.pk).update(run_id=run.pk)
    return run


def run_upload(*, upload_id: int, run_id: int) -> SyncRun:
    """Run a confirmed upload for real (its ``pending`` run): under the source's lock, the
    preview is checked again before any row is written."""
    upload = SyncUpload.objects.get(pk=upload_id)
    run = SyncRun.objects.get(pk=run_id)
    try:
        with upload_file(upload) as path:
            return run_ingest(
                upload.source,
                file=path,
                run=run,
                batch_size=run.batch_size,
                before_load=lambda: check_preview(upload),
            )
    except (UploadError, SourceConfigError) as e:
        # Purged meanwhile, or the source is gone from the configuration: the run says so.
        SyncRun.objects.filter(pk=run.pk, status__in=SyncRun.ACTIVE).update(
            status=SyncRun.Status.FAILED, finished_at=timezone.now(), message=str(e)[:2000]
        )
        run.refresh_from_db()
        return run

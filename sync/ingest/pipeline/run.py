"""A run's lifecycle: the ``SyncRun`` row, the lock, fetch and schema check, the batches,
verification (with auto-recovery of unexplained gaps) and the final status and metrics."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import replace

from django.conf import settings
from django.db import DatabaseError, connection
from django.utils import timezone

from sync.cache.writer import BackgroundWriter, restore_settled, settle
from sync.ingest import left_sheet, retry
from sync.ingest.alerts import raise_alert
from sync.ingest.exceptions import (
    IngestError,
    SourceFileError,
    SourceUnavailableError,
    SyncAlreadyRunningError,
)
from sync.ingest.logs import LogBuffer
from sync.ingest.pipeline.batches import BatchLoading, Cancelled, Counts
from sync.ingest.pipeline.database import RunConnection
from sync.ingest.pipeline.keys import KeysAhead, SheetKeys, read_key_lines, read_keys
from sync.ingest.pipeline.lock import SourceLock, holder_of
from sync.ingest.pipeline.reader import warm_up
from sync.ingest.pipeline.spool import SpooledSource
from sync.ingest.schema import SchemaReport, column_limits, compare_headers, scan_rows
from sync.ingest.source_definitions import SourceConfig, get_source
from sync.ingest.source_settings import config_for
from sync.ingest.sources import CsvSource, Source, source_for
from sync.ingest.validation import RowValidator, ValidRow
from sync.ingest.verification import verify_run
from sync.models import ErrorLog, SyncRun
from sync.redaction import RedactPiiFilter, redact

logger = logging.getLogger(__name__)
logger.addFilter(RedactPiiFilter())

Category = ErrorLog.Category


def start_run(
    source: str,
    *,
    file: str | None = None,
    dry_run: bool = False,
    trigger: str = SyncRun.Trigger.MANUAL,
    batch_size: int | None = None,
) -> SyncRun:
    """The ``pending`` row of a run, committed (its id is what a caller follows)."""
    config = get_source(source)
    _kind, location = config.resolve_location(file)
    # The live configuration (sync_config, edited by staff) is read at the start of every run:
    # a change reaches running workers without a restart.
    return SyncRun.objects.create(
        source=source,
        target=config.label,
        location=location,
        trigger=trigger,
        dry_run=dry_run,
        batch_size=batch_size or config_for(source).batch_size,
    )


def request_cancel(run_id: int) -> bool:
    """Ask a run to stop after its current batch; False when it is no longer active."""
    return bool(
        SyncRun.objects.filter(pk=run_id, status__in=SyncRun.ACTIVE).update(cancel_requested=True)
    )


def run_ingest(
    source: str,
    *,
    file: str | None = None,
    dry_run: bool = False,
    only_keys: Iterable[str] | None = None,
    trigger: str = SyncRun.Trigger.MANUAL,
    batch_size: int | None = None,
    run: SyncRun | None = None,
    progress: Callable[[SyncRun], None] | None = None,
    before_load: Callable[[], None] | None = None,
) -> SyncRun:
    """Run one sync of ``source`` and return its finished ``SyncRun``.

    ``before_load`` runs holding the source's lock, after the schema check and before the
    first row is written; an ``IngestError`` it raises fails the run with its message and
    nothing written (a confirmed console upload checks that its preview still holds).

    Raises ``SyncAlreadyRunningError`` when another run holds the source (this run is then
    recorded as ``refused``); every other failure is recorded in the run, not raised.
    """
    config = get_source(source)
    run = run or start_run(
        source, file=file, dry_run=dry_run, trigger=trigger, batch_size=batch_size
    )
    lock = SourceLock(source)
    if not lock.acquire():
        holder = holder_of(source)
        since = (
            f", started {holder.started_at:%Y-%m-%d %H:%M:%S}"
            if (holder and holder.started_at)
            else ""
        )
        message = (
            f"{source}: another sync of this source is running"
            f"{f' (run {holder.pk}{since})' if holder else ''}; this one was refused. "
            "Wait for it to finish, or cancel it "
            f"(manage.py sync_ingest {source} --cancel {holder.pk if holder else 'ID'})."
        )
        SyncRun.objects.filter(pk=run.pk).update(
            status=SyncRun.Status.REFUSED, message=message, finished_at=timezone.now()
        )
        raise SyncAlreadyRunningError(message)
    try:
        # Holding the lock, no other run of the source can be active: older "running" rows
        # belong to processes that died.
        SyncRun.objects.filter(source=source, status__in=SyncRun.ACTIVE).exclude(pk=run.pk).update(
            status=SyncRun.Status.FAILED,
            finished_at=timezone.now(),
            message="abandoned: the process running it stopped",
        )
        Ingestion(
            config,
            run,
            lock,
            file=file,
            only_keys=only_keys,
            progress=progress,
            before_load=before_load,
        ).execute()
    finally:
        try:
            lock.release()
        except DatabaseError:  # the connection is gone, and the lock with it
            connection.close()
    run.refresh_from_db()
    return run


class Ingestion(BatchLoading, RunConnection):
    """One run of one source, holding the source's lock."""

    def __init__(
        self,
        config: SourceConfig,
        run: SyncRun,
        lock: SourceLock,
        *,
        file: str | None,
        only_keys: Iterable[str] | None,
        progress: Callable[[SyncRun], None] | None,
        before_load: Callable[[], None] | None = None,
    ) -> None:
        self.config = config
        self.before_load = before_load
        self.run = run
        self.lock = lock
        self.kind, self.location = config.resolve_location(file)
        self.only_keys = set(only_keys) if only_keys is not None else None
        self.progress = progress
        self.counts = Counts()
        self.phase_ms: dict[str, float] = {}
        self.logs = LogBuffer(run.pk, config.name)
        self.sample: list[ValidRow] = []
        self.seen_only: set[str] = set()
        self.failed_keys: set[str] = set()
        self.sheet_keys = SheetKeys()  # the pre-scan's: duplicate keys, checksum (keys.py)
        self.sheet_changed = False
        self._settling: list = []  # completed intents the current batch deletes
        self.through = BackgroundWriter()  # Redis writes overlap the next batch (I4 kept)
        self.auto_recovery = config_for(config.name).auto_recovery

    def _time(self, phase: str, started: float) -> None:
        elapsed = (time.perf_counter() - started) * 1000
        self.phase_ms[phase] = self.phase_ms.get(phase, 0.0) + elapsed

    def execute(self) -> None:
        started = time.perf_counter()
        self._update_run(
            status=SyncRun.Status.RUNNING,
            started_at=timezone.now(),
            phase="fetch",
            host=f"{socket.gethostname()}:{os.getpid()}",
        )
        status, message = SyncRun.Status.SUCCEEDED, ""
        verification: dict = {}
        spooled: SpooledSource | None = None
        try:
            source = source_for(self.config, self.kind, self.location, on_retry=self._network_retry)
            warm_up(self.kind, self.location)  # the reader process, while this prepares
            # Read once (pipeline/spool.py): a workbook's XML parse, a Google Sheet's requests
            # cost the most of a run. A CSV file is cheaper to read again than to spool; its
            # two reads are compared by their bytes' digest (keys.py).
            if not isinstance(source, CsvSource):
                source = spooled = SpooledSource(source)
            t = time.perf_counter()
            # A file that cannot be decoded whole fails here, nothing written (a CSV file's
            # UTF-8 is checked by its key pre-scan's read instead: sources.py, prescan).
            if isinstance(source, CsvSource):
                source.prescan(deferred=True)
            else:
                source.prescan()
            headers = source.headers()
            self._time("fetch", t)
            ahead = self._keys_ahead(source, headers)
            try:
                validator = self._prepare(source, headers, ahead)
            finally:
                if ahead is not None:
                    ahead.wait()  # never left reading the file
            if self.before_load is not None:
                self._with_db(self.before_load)
            self._load(source, validator)
            if self.only_keys is not None:
                self._forget_vanished()
            if not self.run.dry_run:
                verification = self._verify(source, validator)
            elif self.only_keys is None:
                # A preview says what its real run would do with the rows the sheet no
                # longer has, with the same error rows (left_sheet.py).
                verification = {
                    "left_sheet": self._with_db(
                        lambda: left_sheet.after_run(self.config, self.run.pk)
                    )
                }
        except Cancelled:
            status, message = SyncRun.Status.CANCELLED, "cancelled between batches"
        except (IngestError, DatabaseError, OSError) as e:
            if isinstance(e, OSError):
                # Reading the sheet or spooling it failed below the sources' own checks (a
                # disk full under the spool, an I/O error): the run fails saying so, never
                # stays "running" until it is abandoned.
                e = SourceFileError(
                    f"the sheet could not be read or spooled: {e}", code="unreadable"
                )
            status, message = SyncRun.Status.FAILED, redact(str(e))[:2000]
            logger.error("%s: run %s failed: %s", self.config.name, self.run.pk, message)
            if isinstance(e, SourceUnavailableError):
                self._source_failed(e)
        # Every batch written through, and the last completed intents deleted (each batch
        # deletes those its predecessors completed).
        restore_settled(self.through.close())
        if spooled is not None:
            spooled.close()
        with contextlib.suppress(DatabaseError):
            settle()
        if status == SyncRun.Status.SUCCEEDED and (
            self.counts.failed or verification.get("gaps") or self.sheet_changed
        ):
            status = SyncRun.Status.PARTIAL
        elapsed = time.perf_counter() - started
        summary = (
            f"{self.counts.done} rows: {self.counts.created} created, "
            f"{self.counts.updated} updated, {self.counts.unchanged} unchanged, "
            f"{self.counts.failed} failed"
        )
        self._update_run(
            status=status,
            phase="",
            finished_at=timezone.now(),
            message=message or summary + left_sheet.message(verification),
            throughput=self.counts.done / elapsed if elapsed else None,
            phase_ms={k: round(v, 1) for k, v in self.phase_ms.items()},
            errors_by_category=self.counts.errors,
            verification=verification,
            gaps=verification.get("gaps"),
        )
        logger.info("%s: run %s %s: %s", self.config.name, self.run.pk, status, summary)

    def _keys_ahead(self, source: Source, headers: list[str]) -> KeysAhead | None:
        """A CSV file's key pre-scan, started on its own thread while this one prepares the
        run (keys.py, KeysAhead)."""
        position = {h: i for i, h in enumerate(headers)}.get(self.config.key_column)
        if not isinstance(source, CsvSource) or position is None:
            return None
        return KeysAhead(source, position)

    def _prepare(
        self, source: Source, headers: list[str], ahead: KeysAhead | None = None
    ) -> RowValidator:
        t = time.perf_counter()
        self._update_run(phase="schema")
        columns = self._with_db(lambda: column_limits(self.config))
        report = SchemaReport(self.config.name, list(columns.values()))
        compare_headers(self.config, headers, report)
        key_header = self.config.key_column
        if report.missing_headers and hasattr(source, "settle"):
            # NOTE: a file that cannot be decoded says so first, as when it was decoded
            # whole before its header was read (a deferred check: sources.py, prescan).
            if ahead is not None:
                ahead.result()  # the file is the pre-scan's until it is read; its error
            source.settle()
        if key_header in report.missing_headers:
            msg = (
                f"the sheet has no {key_header!r} column (the natural key); "
                f"its columns are: {', '.join(headers) or 'none'}"
            )
            raise SourceFileError(msg, code="no_key_column")
        self._missing_columns(report.missing_headers, headers)
        validator = RowValidator(self.config, columns, headers)
        self._time("schema", t)
        # The whole sheet is read once before the first batch: its duplicate keys (keys.py)
        # and, when the real table limits some column, every value measured, so the run's
        # audit names what will not fit before a single row is written.
        t_scan = time.perf_counter()
        self._with_db(lambda: self._prescan(source, validator, report, headers, ahead))
        # How the file was read (encoding, delimiter, what was detected): with the report.
        file = source.describe()
        for warning in file.get("warnings", ()):
            logger.warning("%s: run %s: %s", self.config.name, self.run.pk, redact(warning))
        # NOTE: the pre-scan counted the rows: no estimate (a file read or a workbook opened
        # again for it).
        self._update_run(
            schema_report={**report.as_dict(), "file": file},
            rows_total=len(self.only_keys)
            if self.only_keys is not None
            else (self.sheet_keys.total),
        )
        self._time("scan", t_scan)
        if report.misfit_count:
            logger.warning(
                "%s: %d row(s) have values that do not fit their column: %s",
                self.config.name,
                report.rows_with_misfits,
                report.by_column(),
            )
        return validator

    def _prescan(
        self,
        source: Source,
        validator: RowValidator,
        report: SchemaReport,
        headers: list[str],
        ahead: KeysAhead | None = None,
    ) -> None:
        # NOTE: from the start on a retry (a lost connection loses the temporary table).
        report.rows_scanned = report.misfit_count = report.rows_with_misfits = 0
        report.misfits.clear()
        self.sheet_keys = SheetKeys()
        position = validator.key_position
        keys = ahead.result() if ahead is not None else None  # raises what its read raised
        if ahead is not None and keys is not None and ahead.position == position:
            self.sheet_keys = keys
            if report.limited:
                scan_rows(report, headers, source.rows())
            return
        if isinstance(source, CsvSource) and not report.limited:
            # A CSV file: its keys in one loop over its lines (most of the cost is the parse).
            source.read_lines(lambda lines: read_key_lines(lines, position, self.sheet_keys))
            self.sheet_keys.checksum = source.read_digest
            return
        # The load's read is compared with this one (keys.py): a spooled source's load reads
        # these very rows, a CSV file's reads are compared by their bytes' digest.
        rows = source.spool(source.rows()) if isinstance(source, SpooledSource) else source.rows()
        rows = read_keys(rows, position, self.sheet_keys)
        if report.limited:
            scan_rows(report, headers, rows)
        else:
            deque(rows, maxlen=0)
        if isinstance(source, CsvSource):
            self.sheet_keys.checksum = source.read_digest

    def _missing_columns(self, missing: list[str], headers: list[str]) -> None:
        """A mapped column the sheet lacks: the run is refused (nothing written), unless the
        source declares the column optional; then its field is left out of the run: kept as
        it is on existing rows, the database default on new ones. Never a blank the sheet
        did not hold (DESIGN I10; docs/ingestion.md, "The missing column rule")."""
        refused = [h for h in missing if h not in self.config.optional_columns]
        if refused:
            fields = ", ".join(f"{h!r} (-> {self.config.columns[h]})" for h in refused)
            msg = (
                f"the sheet has no column {fields}; nothing was written: a missing column "
                "would blank that field on every row. Add the column to the sheet, or "
                f"declare it in optional_columns of source {self.config.name!r} to leave "
                f"the field as it is. The sheet's columns: {', '.join(headers) or 'none'}"
            )
            self._with_db(
                lambda: ErrorLog.objects.bulk_create(
                    [
                        ErrorLog(
                            run_id=self.run.pk,
                            source=self.config.name,
                            category=Category.SOURCE,
                            code="missing_column",
                            column=header,
                            reason=redact(
                                f"{header} is mapped to {self.config.columns[header]} but not "
                                "in the sheet; the run was refused"
                            ),
                        )
                        for header in refused
                    ]
                )
            )
            for _header in refused:
                self.counts.add_error(Category.SOURCE)
            raise IngestError(msg)
        if missing:
            logger.warning(
                "%s: run %s: optional column(s) %s not in the sheet: left as they are",
                self.config.name,
                self.run.pk,
                ", ".join(missing),
            )
            self.config = replace(
                self.config,
                columns={h: f for h, f in self.config.columns.items() if h not in missing},
            )

    def _source_failed(self, error: SourceUnavailableError) -> None:
        """The sheet could not be read: one error row with the category (``source``: the
        file itself, ``network``: a fault that outlasted the retries) and what went wrong."""
        self.counts.add_error(error.category)
        self._with_db(
            lambda: ErrorLog.objects.create(
                run_id=self.run.pk,
                source=self.config.name,
                category=error.category,
                code=error.code,
                retryable=error.category == Category.NETWORK,
                reason=redact(str(error))[:2000],
            ),
            locked=False,
        )

    def _forget_vanished(self) -> None:
        vanished = sorted((self.only_keys or set()) - self.seen_only)  # only with only_keys
        if vanished:
            self._with_db(lambda: retry.forget_missing(source=self.config.name, keys=vanished))

    def _verify(self, source: Source, validator: RowValidator) -> dict:
        self._update_run(phase="verify")
        t = time.perf_counter()
        whole_sheet = self.only_keys is None
        result = self._with_db(
            lambda: verify_run(
                self.config,
                self.run.pk,
                self.sample,
                validator,
                explained=self.failed_keys,
                whole_sheet=whole_sheet,
            )
        )
        unexplained = result["unexplained_gaps"]
        if unexplained and self.auto_recovery:
            logger.warning(
                "%s: %d row(s) missing without an error; re-syncing them",
                self.config.name,
                len(unexplained),
            )
            self._time("verify", t)
            self._load(source, validator, only_keys=set(unexplained))
            t = time.perf_counter()
            self._update_run(phase="verify")
            again = self._with_db(
                lambda: verify_run(
                    self.config,
                    self.run.pk,
                    self.sample,
                    validator,
                    explained=self.failed_keys,
                    whole_sheet=whole_sheet,
                )
            )
            result["recovery"] = {
                "attempted": len(unexplained),
                "recovered": len(unexplained) - len(again["unexplained_gaps"]),
            }
            result.update(
                {
                    k: again[k]
                    for k in (
                        "gaps",
                        "gap_keys",
                        "unexplained_gaps",
                        "database_count",
                        "table_count",
                    )
                }
            )
            if again["unexplained_gaps"]:
                raise_alert(
                    "recovery_failed",
                    self.config.name,
                    f"{len(again['unexplained_gaps'])} missing row(s) could not be re-synced",
                    {"run_id": self.run.pk, "keys": again["unexplained_gaps"][:50]},
                )
        if result["gaps"] > settings.SYNC_INGEST_GAP_ALERT_THRESHOLD:
            raise_alert(
                "gaps",
                self.config.name,
                f"{result['gaps']} sheet row(s) are not in the database",
                {"run_id": self.run.pk, "keys": result["gap_keys"][:50]},
            )
        self._time("verify", t)
        return result

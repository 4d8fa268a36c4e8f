"""A run: one source, locked, read once, validated, compared, upserted in batches, verified.

``run_ingest`` is the one entry point (commands, tasks and the console call it). The run's
lifecycle is in its ``SyncRun`` row: ``pending`` → ``running`` (phase, progress) →
``succeeded`` | ``partial`` (some rows failed or are missing) | ``failed`` | ``cancelled``;
a second run of a busy source ends ``refused``. Each batch is one transaction holding its
rows, their record and error logs and the run's progress, so a cancel, a crash or a lost
connection leaves data, logs and counts consistent, and re-running is idempotent (I7).
A bad row is reported and never stops the others (I8); a lost database connection is
re-established (the advisory lock taken again) and the batch retried.
"""

from __future__ import annotations

import itertools
import logging
import os
import random
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.utils import timezone

from sync.cache.writer import mark_changed
from sync.ingest import retry
from sync.ingest.alerts import raise_alert
from sync.ingest.config import SourceConfig, get_source
from sync.ingest.exceptions import (
    IngestError,
    RunAbortedError,
    SourceUnavailableError,
    SyncAlreadyRunningError,
)
from sync.ingest.logs import LogBuffer
from sync.ingest.schema import SchemaReport, column_limits, compare_headers, scan_rows
from sync.ingest.sources import Source, backoff_delay, open_source
from sync.ingest.upsert import BatchWriter
from sync.ingest.validation import Issue, RowValidator, ValidRow
from sync.ingest.verification import verify_run
from sync.models import ErrorLog, RecordLog, SyncRun
from sync.redaction import RedactPiiFilter, redact

logger = logging.getLogger(__name__)
logger.addFilter(RedactPiiFilter())

Category = ErrorLog.Category
Action = RecordLog.Action
LOCK_CLASS = 0x5359  # "SY": the advisory lock namespace of ingestion
# SQLSTATEs of failures that may pass on a later attempt: lock timeout, serialization,
# deadlock, statement timeout, out of resources.
RETRYABLE_STATES = {"55P03", "40001", "40P01", "57014", "53000", "53100", "53200", "53300"}


# --------------------------------------------------------------------------- the lock


class SourceLock:
    """A session-level PostgreSQL advisory lock per source (taken on the run's connection)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.backend_pid: int | None = None
        self.previous_timeout: str | None = None  # the session's lock_timeout before

    def acquire(self) -> bool:
        """Take the lock; with it, the session's ``lock_timeout`` becomes
        SYNC_INGEST_LOCK_TIMEOUT_MS (a row another process holds fails its row, not the run),
        set once here rather than by a round trip per batch, and restored by ``release``."""
        with connection.cursor() as cursor:
            # NOTE: OFFSET 0 keeps the subquery apart: the old value is read before the lock
            # is tried (and the new value set only when it is taken).
            cursor.execute(
                "SELECT s.before, CASE WHEN pg_try_advisory_lock(%s, hashtext(%s))"
                " THEN set_config('lock_timeout', %s, false) END, pg_backend_pid()"
                " FROM (SELECT current_setting('lock_timeout') AS before OFFSET 0) s",
                [LOCK_CLASS, self.source, f"{settings.SYNC_INGEST_LOCK_TIMEOUT_MS}ms"])
            before, taken, pid = cursor.fetchone()
        self.backend_pid = pid if taken is not None else None
        if taken is not None and self.previous_timeout is None:
            self.previous_timeout = before
        return taken is not None

    def held(self) -> bool:
        """Still held: the connection that took it is the one we have (no query needed)."""
        raw = connection.connection
        return (self.backend_pid is not None and raw is not None and not raw.closed
                and raw.info.backend_pid == self.backend_pid)

    def release(self) -> None:
        if self.held():
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s, hashtext(%s)),"
                               " set_config('lock_timeout', %s, false)",
                               [LOCK_CLASS, self.source, self.previous_timeout or "0"])
        self.backend_pid = None


def holder_of(source: str) -> SyncRun | None:
    """The run that holds the source's lock (the newest active run of the source)."""
    return SyncRun.objects.filter(source=source, status=SyncRun.Status.RUNNING).order_by(
        "-created_at").first()


# --------------------------------------------------------------------------- run rows


def start_run(source: str, *, file: str | None = None, dry_run: bool = False,
              trigger: str = SyncRun.Trigger.MANUAL, batch_size: int | None = None,
              ) -> SyncRun:
    """The ``pending`` row of a run, committed (its id is what a caller follows)."""
    config = get_source(source)
    _kind, location = config.resolve_location(file)
    return SyncRun.objects.create(
        source=source, target=config.label, location=location, trigger=trigger,
        dry_run=dry_run, batch_size=batch_size or config.batch_size)


def request_cancel(run_id: int) -> bool:
    """Ask a run to stop after its current batch; False when it is no longer active."""
    return bool(SyncRun.objects.filter(pk=run_id, status__in=SyncRun.ACTIVE).update(
        cancel_requested=True))


def run_ingest(source: str, *, file: str | None = None, dry_run: bool = False,
               only_keys: Iterable[str] | None = None, trigger: str = SyncRun.Trigger.MANUAL,
               batch_size: int | None = None, run: SyncRun | None = None,
               progress: Callable[[SyncRun], None] | None = None) -> SyncRun:
    """Run one sync of ``source`` and return its finished ``SyncRun``.

    Raises ``SyncAlreadyRunningError`` when another run holds the source (this run is then
    recorded as ``refused``); every other failure is recorded in the run, not raised.
    """
    config = get_source(source)
    run = run or start_run(source, file=file, dry_run=dry_run, trigger=trigger,
                           batch_size=batch_size)
    lock = SourceLock(source)
    if not lock.acquire():
        holder = holder_of(source)
        since = f", started {holder.started_at:%Y-%m-%d %H:%M:%S}" if (
            holder and holder.started_at) else ""
        message = (f"{source}: another sync of this source is running"
                   f"{f' (run {holder.pk}{since})' if holder else ''}; this one was refused. "
                   "Wait for it to finish, or cancel it "
                   f"(manage.py sync_ingest {source} --cancel {holder.pk if holder else 'ID'}).")
        SyncRun.objects.filter(pk=run.pk).update(
            status=SyncRun.Status.REFUSED, message=message, finished_at=timezone.now())
        raise SyncAlreadyRunningError(message)
    try:
        # Holding the lock, no other run of the source can be active: older "running" rows
        # belong to processes that died.
        SyncRun.objects.filter(source=source, status__in=SyncRun.ACTIVE).exclude(
            pk=run.pk).update(status=SyncRun.Status.FAILED, finished_at=timezone.now(),
                              message="abandoned: the process running it stopped")
        Ingestion(config, run, lock, file=file, only_keys=only_keys, progress=progress).execute()
    finally:
        try:
            lock.release()
        except DatabaseError:  # the connection is gone, and the lock with it
            connection.close()
    run.refresh_from_db()
    return run


# --------------------------------------------------------------------------- a run


@dataclass
class Counts:
    done: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: int = 0
    errors: dict[str, int] = field(default_factory=dict)

    def add_error(self, category: str) -> None:
        self.errors[category] = self.errors.get(category, 0) + 1


class _Cancelled(Exception):  # noqa: N818 - control flow inside a run
    pass


class Ingestion:
    def __init__(self, config: SourceConfig, run: SyncRun, lock: SourceLock, *,
                 file: str | None, only_keys: Iterable[str] | None,
                 progress: Callable[[SyncRun], None] | None) -> None:
        self.config = config
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
        self.child_label = config.child.model._meta.label_lower if config.child else ""

    # ------------------------------------------------------------------ bookkeeping

    def _time(self, phase: str, started: float) -> None:
        elapsed = (time.perf_counter() - started) * 1000
        self.phase_ms[phase] = self.phase_ms.get(phase, 0.0) + elapsed

    def _update_run(self, **values) -> None:
        # NOTE: the run's own row needs no lock: a run that lost its lock still records why.
        self._with_db(lambda: SyncRun.objects.filter(pk=self.run.pk).update(**values),
                      locked=False)

    def _network_retry(self, attempt: int, error: Exception, delay: float) -> None:
        self.counts.add_error(Category.NETWORK)
        self._with_db(lambda: ErrorLog.objects.create(
            run_id=self.run.pk, source=self.config.name, category=Category.NETWORK,
            code="retry", retryable=True,
            reason=redact(f"attempt {attempt} failed: {error}; retrying in {delay:.2f}s")))

    def _with_db(self, operation: Callable[[], object], *, locked: bool = True):
        """``operation()``; a lost connection is re-established (and, for work that needs
        it, the lock re-taken), up to SYNC_INGEST_DB_RETRIES times with backoff."""
        for attempt in range(settings.SYNC_INGEST_DB_RETRIES + 1):
            try:
                if attempt or not self._usable(locked=locked):
                    self._reconnect(attempt, locked=locked)
                return operation()
            except DatabaseError as e:
                if attempt == settings.SYNC_INGEST_DB_RETRIES or self._usable(locked=locked):
                    raise
                logger.warning("%s: connection lost (%s); reconnecting", self.config.name,
                               type(e).__name__)
        raise AssertionError  # pragma: no cover - the loop returns or raises

    def _usable(self, *, locked: bool = True) -> bool:
        """The connection works (and, when ``locked``, is the one holding the lock)."""
        if locked:
            return self.lock.held() and self._connection_alive()
        return connection.connection is None or self._connection_alive()

    def _connection_alive(self) -> bool:
        raw = connection.connection
        if raw is None or raw.closed or not connection.is_usable():
            connection.close()
            return False
        return True

    def _reconnect(self, attempt: int, *, locked: bool = True) -> None:
        connection.close()
        if attempt:
            time.sleep(backoff_delay(attempt - 1, settings.SYNC_INGEST_DB_BACKOFF))
        connection.ensure_connection()
        if not locked:
            return
        if not self.lock.acquire():
            msg = ("the connection to PostgreSQL was lost and another run took the source "
                   "lock meanwhile; this run stopped")
            raise RunAbortedError(msg)
        logger.warning("%s: reconnected to PostgreSQL, lock re-taken", self.config.name)
        ErrorLog.objects.create(
            run_id=self.run.pk, source=self.config.name, category=Category.DATABASE,
            code="reconnected", retryable=True,
            reason="connection to PostgreSQL lost; reconnected and retried the batch")
        self.counts.add_error(Category.DATABASE)

    # ------------------------------------------------------------------ the run

    def execute(self) -> None:
        started = time.perf_counter()
        self._update_run(status=SyncRun.Status.RUNNING, started_at=timezone.now(),
                         phase="fetch", host=f"{socket.gethostname()}:{os.getpid()}")
        status, message = SyncRun.Status.SUCCEEDED, ""
        verification: dict = {}
        try:
            source = open_source(self.kind, self.location, worksheet=self.config.worksheet,
                                 on_retry=self._network_retry)
            t = time.perf_counter()
            headers = source.headers()
            self._time("fetch", t)
            validator = self._prepare(source, headers)
            self._load(source, validator)
            if self.only_keys is not None:
                self._forget_vanished()
            if not self.run.dry_run:
                verification = self._verify(source, validator)
        except _Cancelled:
            status, message = SyncRun.Status.CANCELLED, "cancelled between batches"
        except (IngestError, DatabaseError) as e:
            status, message = SyncRun.Status.FAILED, redact(str(e))[:2000]
            logger.error("%s: run %s failed: %s", self.config.name, self.run.pk, message)
            if isinstance(e, SourceUnavailableError):
                self.counts.add_error(Category.NETWORK)
        if status == SyncRun.Status.SUCCEEDED and (self.counts.failed or verification.get(
                "gaps")):
            status = SyncRun.Status.PARTIAL
        elapsed = time.perf_counter() - started
        summary = (f"{self.counts.done} rows: {self.counts.created} created, "
                   f"{self.counts.updated} updated, {self.counts.unchanged} unchanged, "
                   f"{self.counts.failed} failed")
        self._update_run(
            status=status, phase="", finished_at=timezone.now(),
            message=message or summary, throughput=self.counts.done / elapsed if elapsed else None,
            phase_ms={k: round(v, 1) for k, v in self.phase_ms.items()},
            errors_by_category=self.counts.errors, verification=verification,
            gaps=verification.get("gaps"))
        logger.info("%s: run %s %s: %s", self.config.name, self.run.pk, status, summary)

    def _prepare(self, source: Source, headers: list[str]) -> RowValidator:
        t = time.perf_counter()
        self._update_run(phase="schema")
        columns = self._with_db(lambda: column_limits(self.config))
        report = SchemaReport(self.config.name, list(columns.values()))
        compare_headers(self.config, headers, report)
        key_header = self.config.key_column
        if key_header in report.missing_headers:
            msg = (f"the sheet has no {key_header!r} column (the natural key); "
                   f"its columns are: {', '.join(headers) or 'none'}")
            raise SourceUnavailableError(msg)
        if report.limited:
            # NOTE: the real table limits some column: measure every row before loading, so
            # the run's audit names what will not fit before a single row is written.
            t_scan = time.perf_counter()
            scan_rows(report, headers, self._rows(source))
            self._time("fetch", t_scan)
        self._update_run(schema_report=report.as_dict(),
                         rows_total=len(self.only_keys) if self.only_keys is not None else (
                             source.estimate_rows() or 0))
        self._time("schema", t)
        if report.misfit_count:
            logger.warning("%s: %d row(s) have values that do not fit their column: %s",
                           self.config.name, report.rows_with_misfits, report.by_column())
        return RowValidator(self.config, columns, headers)

    def _rows(self, source: Source) -> Iterator[tuple[int, list[str]]]:
        """The source's rows, timed as the fetch phase, narrowed to ``only_keys``."""
        rows = source.rows()
        while True:
            t = time.perf_counter()
            try:
                row = next(rows)
            except StopIteration:
                self._time("fetch", t)
                return
            self._time("fetch", t)
            yield row

    def _load(self, source: Source, validator: RowValidator,
              only_keys: set[str] | None = None) -> None:
        self._update_run(phase="load")
        writer = BatchWriter(self.config, validator)
        self.queued = retry.has_entries(self.config.name)
        only = only_keys if only_keys is not None else self.only_keys
        rows: Iterable = self._rows(source)
        if only is not None:
            rows = self._narrow(rows, validator, only)
        batch_size = self.run.batch_size
        while batch := list(itertools.islice(rows, batch_size)):
            self._with_db(lambda b=batch: self._batch(b, validator, writer))
            if self.progress:
                self.progress(self.run)
            if self.run.cancel_requested:
                raise _Cancelled

    def _narrow(self, rows: Iterable, validator: RowValidator, only: set[str]) -> Iterator:
        for row_number, cells in rows:
            key = validator.key_of(cells)
            if key in only:
                self.seen_only.add(key)
                yield row_number, cells

    # ------------------------------------------------------------------ one batch

    def _batch(self, batch: list[tuple[int, list[str]]], validator: RowValidator,
               writer: BatchWriter) -> None:
        t = time.perf_counter()
        valid: dict[str, ValidRow] = {}
        failed: list[tuple[int, str, list[Issue]]] = []
        superseded: list[tuple[int, str, int]] = []
        for row_number, cells in batch:
            row, issues = validator.validate(row_number, cells)
            if row is None:
                failed.append((row_number, self._safe_key(validator, cells), issues))
                continue
            earlier = valid.pop(row.key, None)
            if earlier is not None:
                superseded.append((earlier.row_number, row.key, row_number))
            valid[row.key] = row
        self._time("validate", t)
        counts_before = (self.counts.created, self.counts.updated, self.counts.unchanged,
                         self.counts.failed, dict(self.counts.errors))
        try:
            with transaction.atomic(durable=True):
                self._write(list(valid.values()), writer, failed, superseded)
                t_commit = time.perf_counter()
            self._time("write_through", t_commit)
        except DatabaseError as e:
            # Nothing of the batch was committed: undo its counts before any retry.
            (self.counts.created, self.counts.updated, self.counts.unchanged,
             self.counts.failed, self.counts.errors) = counts_before
            self.logs.clear()
            writer.forget_stage()
            if not self._usable():
                raise
            # A row broke the batch statement: isolate it, one row per transaction.
            logger.warning("%s: batch failed (%s); retrying its rows one by one",
                           self.config.name, type(e).__name__)
            self._one_by_one(list(valid.values()), writer, failed, superseded)
        self._sample(valid.values())

    def _one_by_one(self, rows: list[ValidRow], writer: BatchWriter, failed: list,
                    superseded: list) -> None:
        for row in rows:
            try:
                with transaction.atomic(durable=True):
                    self._write([row], writer, [], [])
            except DatabaseError as e:
                writer.forget_stage()
                if not self._usable():
                    raise
                category, retryable = categorize(e)
                first_line = (str(e).splitlines() or [type(e).__name__])[0]
                issue = Issue(category, sqlstate(e), "", redact(first_line))
                with transaction.atomic(durable=True):
                    self._log_failures([(row.row_number, row.key, [issue])], retryable=retryable)
                    self.logs.flush()
                    self._advance(1)
        if failed or superseded:
            with transaction.atomic(durable=True):
                self._write([], writer, failed, superseded)

    def _write(self, rows: list[ValidRow], writer: BatchWriter, failed: list, superseded: list,
               ) -> None:
        t = time.perf_counter()
        dry = self.run.dry_run
        savepoint = transaction.savepoint() if dry else None
        # NOTE: a dry run's record logs are written after the rollback, from the answer.
        written = writer.write(rows, run_id=self.run.pk, log=not dry)
        if dry:
            transaction.savepoint_rollback(savepoint)
            writer.forget_stage()  # its rows (and maybe the table) came back or went
        parents: list[int] = []
        children: list[int] = []
        counts = self.counts
        for row in written:
            if row.action == Action.CREATED:
                counts.created += 1
            elif row.action == Action.UPDATED:
                counts.updated += 1
            else:
                counts.unchanged += 1
            if row.parent_written:
                parents.append(row.object_id)
            if row.child_id is not None:
                children.append(row.child_id)
            if dry:
                self.logs.record(row.row_number, row.key, row.action, row.object_id)
        if not dry:
            mark_changed(self.config.label, parents)
            if children:
                mark_changed(self.child_label, children)
        self._time("update", t)
        self._log_failures(failed, retryable=False)
        self._log_superseded(superseded)
        self.logs.flush()
        if self.queued and rows and not dry:
            retry.resolve(source=self.config.name, keys=[row.key for row in rows])
        self._advance(len(rows) + len(failed) + len(superseded))

    def _log_failures(self, failed: list[tuple[int, str, list[Issue]]], *, retryable: bool,
                      ) -> None:
        to_queue = []
        for row_number, key, issues in failed:
            self.counts.failed += 1
            self.failed_keys.add(key)
            self.logs.record(row_number, key, Action.FAILED)
            for issue in issues:
                self.counts.add_error(issue.category)
                self.logs.error(category=issue.category, code=issue.code, row_number=row_number,
                                key=key, column=issue.header, value_length=issue.value_length,
                                limit=issue.limit, reason=f"{issue.header} {issue.reason}".strip(),
                                retryable=retryable)
            if retryable and key and not self.run.dry_run:
                to_queue.append((key, row_number, issues[0].category, issues[0].reason))
        retry.enqueue(source=self.config.name, location=self.location, run_id=self.run.pk,
                      failures=to_queue)

    def _log_superseded(self, superseded: list[tuple[int, str, int]]) -> None:
        for row_number, key, later in superseded:
            self.counts.add_error(Category.CONFLICT)
            self.logs.record(row_number, key, Action.SUPERSEDED)
            self.logs.error(category=Category.CONFLICT, code="duplicate_key",
                            row_number=row_number, key=key, column=self.config.key_column,
                            reason=f"the same key is on row {later}; the later row was stored")

    def _advance(self, rows: int) -> None:
        """Progress and counts of the batch, in its transaction; reads the cancel flag."""
        self.counts.done += rows
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE sync_audit_logs SET rows_done = %s, rows_total = greatest(rows_total, %s),"
                " created = %s, updated = %s, unchanged = %s, failed = %s"
                " WHERE id = %s RETURNING cancel_requested, rows_total",
                [self.counts.done, self.counts.done, self.counts.created, self.counts.updated,
                 self.counts.unchanged, self.counts.failed, self.run.pk])
            cancel, total = cursor.fetchone()
        self.run.cancel_requested, self.run.rows_done, self.run.rows_total = (
            cancel, self.counts.done, total)

    def _safe_key(self, validator: RowValidator, cells: list[str]) -> str:
        """The row's key for the logs, unless it is not a key at all (it might be PII)."""
        key = validator.key_of(cells)
        pattern = validator._key_pattern
        if pattern is not None and not pattern.fullmatch(key):
            return redact(key)[:64]
        return key[:200]

    def _sample(self, rows: Iterable[ValidRow]) -> None:
        """A uniform sample of valid rows (reservoir) for verification's field comparison."""
        size = settings.SYNC_INGEST_SAMPLE_SIZE
        for row in rows:
            self._seen = getattr(self, "_seen", 0) + 1
            if len(self.sample) < size:
                self.sample.append(row)
            else:
                slot = random.randrange(self._seen)  # noqa: S311 - sampling, not secrets
                if slot < size:
                    self.sample[slot] = row

    def _forget_vanished(self) -> None:
        vanished = sorted(self.only_keys - self.seen_only)
        if vanished:
            self._with_db(lambda: retry.forget_missing(source=self.config.name, keys=vanished))

    # ------------------------------------------------------------------ verification

    def _verify(self, source: Source, validator: RowValidator) -> dict:
        self._update_run(phase="verify")
        t = time.perf_counter()
        result = self._with_db(lambda: verify_run(self.config, self.run.pk, self.sample,
                                                  validator, explained=self.failed_keys))
        unexplained = result["unexplained_gaps"]
        if unexplained and self.config.auto_recovery:
            logger.warning("%s: %d row(s) missing without an error; re-syncing them",
                           self.config.name, len(unexplained))
            self._time("verify", t)
            self._load(source, validator, only_keys=set(unexplained))
            t = time.perf_counter()
            self._update_run(phase="verify")
            again = self._with_db(lambda: verify_run(self.config, self.run.pk, self.sample,
                                                     validator, explained=self.failed_keys))
            result["recovery"] = {"attempted": len(unexplained),
                                  "recovered": len(unexplained) - len(again["unexplained_gaps"])}
            result.update({k: again[k] for k in ("gaps", "gap_keys", "unexplained_gaps",
                                                 "database_count")})
            if again["unexplained_gaps"]:
                raise_alert("recovery_failed", self.config.name,
                            f"{len(again['unexplained_gaps'])} missing row(s) could not be "
                            "re-synced", {"run_id": self.run.pk,
                                          "keys": again["unexplained_gaps"][:50]})
        if result["gaps"] > settings.SYNC_INGEST_GAP_ALERT_THRESHOLD:
            raise_alert("gaps", self.config.name,
                        f"{result['gaps']} sheet row(s) are not in the database",
                        {"run_id": self.run.pk, "keys": result["gap_keys"][:50]})
        self._time("verify", t)
        return result


def sqlstate(error: Exception) -> str:
    return getattr(error.__cause__, "sqlstate", None) or ""


def categorize(error: Exception) -> tuple[str, bool]:
    """(category, retryable) of a database error that one row caused."""
    state = sqlstate(error)
    if state in RETRYABLE_STATES:
        return Category.DATABASE, True
    if state.startswith("22"):  # data exceptions: too long, out of range, bad value
        return Category.SCHEMA, False
    if isinstance(error, IntegrityError):
        return Category.CONFLICT, False
    return Category.DATABASE, True


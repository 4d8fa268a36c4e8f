"""A run's batches: each validated, written (one statement: rows, intents, logs, progress),
counted in one transaction with the run's progress; a batch whose statement one row breaks is
retried row by row, so only that row fails (I8)."""

from __future__ import annotations

import functools
import itertools
import logging
import math
import random
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple, cast

from django.conf import settings
from django.db import DatabaseError, connection, transaction

from sync.cache import store
from sync.cache.outbox import settle_cte
from sync.cache.writer import restore_settled, take_settled, write_on_commit
from sync.ingest import retry
from sync.ingest.pipeline.database import RunConnection, categorize, sqlstate
from sync.ingest.pipeline.keys import SheetKeys
from sync.ingest.pipeline.readahead import ReadAhead, in_turn
from sync.ingest.pipeline.reader import ReaderProcess, ReaderStats, ReadJob, SpoolFile
from sync.ingest.pipeline.spool import SpooledSource
from sync.ingest.sources import CsvSource, Source
from sync.ingest.upsert import BatchWriter, Progress
from sync.ingest.validation import Issue, RowValidator, ValidRow
from sync.models import ErrorLog, RecordLog, SyncRun
from sync.redaction import RedactPiiFilter, redact

if TYPE_CHECKING:
    from sync.cache.writer import BackgroundWriter
    from sync.ingest.logs import LogBuffer

logger = logging.getLogger(__name__)
logger.addFilter(RedactPiiFilter())

Category = ErrorLog.Category
Action = RecordLog.Action


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


class Checked(NamedTuple):
    valid: dict[str, ValidRow]
    failed: list[tuple[int, str, list[Issue]]]
    superseded: list[tuple[int, str, int]]
    encoded: str | None  # the valid rows as the batch statement's parameter


def _other_rows(rows: list[int], row_number: int) -> str:
    others = [n for n in rows if n != row_number]
    shown = ", ".join(map(str, others[:20])) + (
        f" and {len(others) - 20} more" if len(others) > 20 else ""
    )
    return f"row{'s' if len(others) > 1 else ''} {shown}"


class Cancelled(Exception):  # noqa: N818 - control flow inside a run
    pass


class BatchLoading(RunConnection):
    """Loading in batches, for ``Ingestion`` (which sets the run's state: ``config``, ``run``,
    ``counts``, ``logs``, ``sample`` …, and the connection handling of ``RunConnection``)."""

    location: str
    only_keys: set[str] | None
    progress: Callable[[SyncRun], None] | None
    logs: LogBuffer
    sample: list[ValidRow]
    seen_only: set[str]
    failed_keys: set[str]
    sheet_keys: SheetKeys
    through: BackgroundWriter
    phase_ms: dict[str, float]

    if TYPE_CHECKING:

        def _time(self, phase: str, started: float) -> None: ...

    def _load(
        self, source: Source, validator: RowValidator, only_keys: set[str] | None = None
    ) -> None:
        self._update_run(phase="load")
        writer = BatchWriter(self.config, validator)
        self.queued = retry.has_entries(self.config.name)
        only = only_keys if only_keys is not None else self.only_keys
        # This read against the pre-scan's (keys.py): a spooled source's load reads the
        # pre-scan's rows; a CSV file's reads are compared by digest.
        read = SheetKeys()
        rows: Iterable = source.rows()
        if only is not None:
            rows = self._narrow(rows, validator, only)
        batch_size = self.run.batch_size

        def fetch() -> list:
            # NOTE: timed by the batch (two clock reads per row cost the read-ahead ~4 ms
            # per 10,000 rows).
            t = time.perf_counter()
            batch = list(itertools.islice(rows, batch_size))
            self._time("fetch", t)
            return batch

        batches = iter(fetch, [])

        def check(batch: list) -> Checked:
            return self._check(batch, validator, writer)

        # A source that logs its retries to the database is read on this thread, in turn; a
        # large one that does not, in the reader process (reader.py), else on a thread.
        ahead = getattr(source, "on_retry", None) is None
        process = self._reader_process(source, validator, only) if ahead else None
        checked_batches = process or (
            ReadAhead(batches, check) if ahead else nullcontext(in_turn(batches, check))
        )
        with checked_batches as in_order:
            for _batch, checked in in_order:
                self.rows_committed: set[int] = set()  # of this batch, by a row-by-row retry
                self._with_db(functools.partial(self._batch, checked, writer))
                if self.progress:
                    self.progress(self.run)
                if self.run.cancel_requested:
                    raise Cancelled
        if process is not None and process.stats is not None:
            self._reader_finished(source, process.stats)
        if isinstance(source, CsvSource):
            read.checksum = source.read_digest
        if not isinstance(source, SpooledSource) and not read.same_read(self.sheet_keys):
            self._sheet_changed()

    def _reader_process(
        self, source: Source, validator: RowValidator, only: set[str] | None
    ) -> ReaderProcess | None:
        """The reader process for this load, or None: a load of the whole sheet of at least
        SYNC_INGEST_READER_PROCESS_ROWS rows (0: never), from a CSV file or the spool."""
        least = settings.SYNC_INGEST_READER_PROCESS_ROWS
        if only is not None or not least or self.sheet_keys.total < least:
            return None
        # NOTE: any other source is spooled by now (run.py: the pre-scan fills the spool).
        readable = (
            source
            if isinstance(source, CsvSource)
            else SpoolFile(cast("SpooledSource", source).path())
        )
        job = ReadJob(
            readable, self.config, validator, self.sheet_keys.duplicates, self.run.batch_size
        )
        logger.info("%s: run %s: batches read in a second process", self.config.name, self.run.pk)
        return ReaderProcess(job)

    def _reader_finished(self, source: Source, stats: ReaderStats) -> None:
        """The reader's timings into the run's, its read's digest into the source."""
        self.phase_ms["fetch"] = self.phase_ms.get("fetch", 0.0) + stats.fetch_ms
        self.phase_ms["validate"] = self.phase_ms.get("validate", 0.0) + stats.validate_ms
        if isinstance(source, CsvSource):
            source.read_digest = stats.read_digest

    def _sheet_changed(self) -> None:
        """The sheet read for loading is not the one the pre-scan read: a duplicate key the
        pre-scan did not see may have been stored. Said loudly; the run ends ``partial``."""
        reason = (
            "the sheet changed while the run read it (rows added, removed or edited "
            "after its pre-scan): a key repeated since then may not have been caught; "
            "run the sync again"
        )
        logger.warning("%s: run %s: %s", self.config.name, self.run.pk, reason)
        self.counts.add_error(Category.CONFLICT)
        self.sheet_changed = True
        self._with_db(
            lambda: ErrorLog.objects.create(
                run_id=self.run.pk,
                source=self.config.name,
                category=Category.CONFLICT,
                code="sheet_changed",
                reason=reason,
            )
        )

    def _narrow(self, rows: Iterable, validator: RowValidator, only: set[str]) -> Iterator:
        for row_number, cells in rows:
            key = validator.key_of(cells)
            if key in only:
                self.seen_only.add(key)
                yield row_number, cells

    def _check(
        self, batch: list[tuple[int, list[str]]], validator: RowValidator, writer: BatchWriter
    ) -> Checked:
        """``check_batch``, timed (``ReadAhead``: no database work)."""
        t = time.perf_counter()
        checked = check_batch(batch, validator, writer, self.sheet_keys.duplicates)
        self._time("validate", t)
        return checked

    def _batch(self, checked: Checked, writer: BatchWriter) -> None:
        valid, failed, superseded, encoded = checked
        if self.rows_committed:
            # NOTE: a retry after the connection was lost amid a row-by-row retry: the rows
            # that committed then are done (counted, logged) and are not written twice.
            valid = {k: r for k, r in valid.items() if r.row_number not in self.rows_committed}
            encoded = None
        counts_before = (
            self.counts.created,
            self.counts.updated,
            self.counts.unchanged,
            self.counts.failed,
            dict(self.counts.errors),
        )
        try:
            if self._one_statement(valid, failed, superseded):
                # NOTE: the batch is the statement alone: it runs as its own transaction
                # (autocommit), with no BEGIN and COMMIT round trips around it, and the
                # write-through's on_commit runs as soon as it returns (committed).
                self._write(list(valid.values()), writer, failed, superseded, encoded)
            else:
                with transaction.atomic(durable=True):
                    self._write(list(valid.values()), writer, failed, superseded, encoded)
                    t_commit = time.perf_counter()
                self._time("write_through", t_commit)
        except DatabaseError as e:
            # Nothing of the batch was committed: undo its counts before any retry.
            (
                self.counts.created,
                self.counts.updated,
                self.counts.unchanged,
                self.counts.failed,
                self.counts.errors,
            ) = counts_before
            self.logs.clear()
            restore_settled(self._settling)
            if not self._usable():
                raise
            # A row broke the batch statement: isolate it, one row per transaction.
            logger.warning(
                "%s: batch failed (%s); retrying its rows one by one",
                self.config.name,
                type(e).__name__,
            )
            self._one_by_one(list(valid.values()), writer, failed, superseded)
        self._sample(valid.values())

    def _one_statement(self, valid: dict, failed: list, superseded: list) -> bool:
        """The batch needs nothing but its statement: valid rows only, no earlier failures of
        theirs to resolve, a real run, and no transaction around the run (tests)."""
        return bool(valid) and not (
            failed or superseded or self.queued or self.run.dry_run or connection.in_atomic_block
        )

    def _one_by_one(
        self, rows: list[ValidRow], writer: BatchWriter, failed: list, superseded: list
    ) -> None:
        for row in rows:
            try:
                with transaction.atomic(durable=True):
                    self._write([row], writer, [], [])
                self.rows_committed.add(row.row_number)
            except DatabaseError as e:
                restore_settled(self._settling)
                if not self._usable():
                    raise
                category, retryable = categorize(e)
                first_line = (str(e).splitlines() or [type(e).__name__])[0]
                issue = Issue(category, sqlstate(e), "", redact(first_line))
                with transaction.atomic(durable=True):
                    self._log_failures([(row.row_number, row.key, [issue])], retryable=retryable)
                    self.logs.flush()
                    self._advance(1)
                self.rows_committed.add(row.row_number)
        if failed or superseded:
            with transaction.atomic(durable=True):
                self._write([], writer, failed, superseded)

    def _write(
        self,
        rows: list[ValidRow],
        writer: BatchWriter,
        failed: list,
        superseded: list,
        encoded: str | None = None,
    ) -> None:
        t = time.perf_counter()
        dry = self.run.dry_run
        self._log_failures(failed, retryable=False)
        self._log_superseded(superseded)
        self.logs.flush()
        rows_after = self.counts.done + len(rows) + len(failed) + len(superseded)
        if rows and not dry:
            # One statement: the rows, their intents and logs, the run's progress and cancel
            # flag, and the deletion of the intents earlier batches' write-through completed.
            self._settling = take_settled() + self.through.take_completed()
            marks = store.capture()  # before the statement that reads the states (store.Marks)
            counts = self.counts
            progress = Progress(
                rows_after,
                counts.created,
                counts.updated,
                counts.unchanged,
                counts.failed,
                self.run.pk,
            )
            answer = writer.write(
                rows, run_id=self.run.pk, progress=progress, settle=self._settling, encoded=encoded
            )
            # On commit: Redis gets what the statement answered, nothing is read again.
            write_on_commit(answer.states, via=self.through, marks=marks)
            # With progress (a real run) the statement answers the run's flag, total and counts.
            cancel_requested, rows_total, counts_after = cast(
                "tuple[bool, int, tuple[int, int, int]]",
                (answer.cancel_requested, answer.rows_total, answer.counts),
            )
            self.counts.created, self.counts.updated, self.counts.unchanged = counts_after
            self.counts.done = rows_after
            self.run.cancel_requested, self.run.rows_done, self.run.rows_total = (
                cancel_requested,
                rows_after,
                rows_total,
            )
            if self.queued:
                retry.resolve(source=self.config.name, keys=[row.key for row in rows])
        else:
            if rows:
                # NOTE: a dry run's record logs are written after the rollback, from the answer.
                savepoint = transaction.savepoint()
                answer = writer.write(rows, run_id=self.run.pk, encoded=encoded)
                transaction.savepoint_rollback(savepoint)
                self._count_dry(answer.rows)
                self.logs.flush()
            self._advance(rows_after - self.counts.done)
        self._time("update", t)

    def _count_dry(self, rows: list) -> None:
        """Count and log a dry run's rows (a real run's statement counts and logs its own)."""
        counts = self.counts
        for row in rows:
            if row.action == Action.CREATED:
                counts.created += 1
            elif row.action == Action.UPDATED:
                counts.updated += 1
            else:
                counts.unchanged += 1
            self.logs.record(row.row_number, row.key, row.action, row.object_id)

    def _log_failures(
        self,
        failed: list[tuple[int, str, list[Issue]]],
        *,
        retryable: bool,
    ) -> None:
        to_queue = []
        for row_number, key, issues in failed:
            self.counts.failed += 1
            self.failed_keys.add(key)
            self.logs.record(row_number, key, Action.FAILED)
            for issue in issues:
                self.counts.add_error(issue.category)
                self.logs.error(
                    category=issue.category,
                    code=issue.code,
                    row_number=row_number,
                    key=key,
                    column=issue.header,
                    value_length=issue.value_length,
                    limit=issue.limit,
                    reason=f"{issue.header} {issue.reason}".strip(),
                    retryable=retryable,
                )
            if retryable and key and not self.run.dry_run:
                to_queue.append((key, row_number, issues[0].category, issues[0].reason))
        retry.enqueue(
            source=self.config.name, location=self.location, run_id=self.run.pk, failures=to_queue
        )

    def _log_superseded(self, superseded: list[tuple[int, str, int]]) -> None:
        for row_number, key, later in superseded:
            self.counts.add_error(Category.CONFLICT)
            self.logs.record(row_number, key, Action.SUPERSEDED)
            self.logs.error(
                category=Category.CONFLICT,
                code="duplicate_key",
                row_number=row_number,
                key=key,
                column=self.config.key_column,
                reason=f"the same key is on row {later}; the later row was stored",
            )

    def _advance(self, rows: int) -> None:
        """Progress and counts of the batch, in its transaction; reads the cancel flag.

        The same statement deletes the intents that the previous batches' write-through
        completed (no commit of their own) and ends the batch statement's trigger skip."""
        self.counts.done += rows
        self._settling = take_settled() + self.through.take_completed()
        settled, params = settle_cte(self._settling)
        with connection.cursor() as cursor:
            cursor.execute(
                f"WITH {settled} UPDATE sync_audit_logs SET rows_done = %s,"  # noqa: S608 - a fixed CTE
                " rows_total = greatest(rows_total, %s), created = %s, updated = %s,"
                " unchanged = %s, failed = %s WHERE id = %s"
                " RETURNING cancel_requested, rows_total,"
                " set_config('pgtrigger.ignore', '{}', true)",
                [
                    *params,
                    self.counts.done,
                    self.counts.done,
                    self.counts.created,
                    self.counts.updated,
                    self.counts.unchanged,
                    self.counts.failed,
                    self.run.pk,
                ],
            )
            cancel, total, _ = cursor.fetchone()
        self.run.cancel_requested, self.run.rows_done, self.run.rows_total = (
            cancel,
            self.counts.done,
            total,
        )

    def _sample(self, rows: Iterable[ValidRow]) -> None:
        """A uniform sample of valid rows (a reservoir) for verification's field comparison.

        Once the reservoir is full, the gap to the next row that enters it is drawn at once
        (Li's "Algorithm L"), so the run's own thread draws a few random numbers per
        reservoir slot over the run, not one per row."""
        size = settings.SYNC_INGEST_SAMPLE_SIZE
        rows = list(rows)
        seen = getattr(self, "_seen", 0)  # rows offered before this batch
        self._seen = seen + len(rows)
        index = 0
        while len(self.sample) < size and index < len(rows):
            self.sample.append(rows[index])
            index += 1
        if not size or len(self.sample) < size:
            return
        if getattr(self, "_weight", None) is None:  # the reservoir just filled
            self._weight = _draw(size)
            self._next = seen + index - 1 + _gap(self._weight)
        while self._next < self._seen:
            # NOTE: random, not secrets: a sample to compare, not anything to guess.
            self.sample[random.randrange(size)] = rows[self._next - seen]  # noqa: S311
            self._weight *= _draw(size)
            self._next += _gap(self._weight)


def check_batch(
    batch: list[tuple[int, list[str]]],
    validator: RowValidator,
    writer: BatchWriter,
    duplicates: dict[str, list[int]],
) -> Checked:
    """The batch validated: its valid rows by key (and encoded for the statement), its failed
    rows, and the rows a later row of the batch with the same key supersedes. No database
    work: a thread (``ReadAhead``) or the reader process (reader.py) runs it."""
    valid: dict[str, ValidRow] = {}
    failed: list[tuple[int, str, list[Issue]]] = []
    superseded: list[tuple[int, str, int]] = []
    for row_number, cells in batch:
        row, issues = validator.validate(row_number, cells)
        if duplicates and (rows := duplicates.get(validator.key_of(cells))):
            # The duplicate rule (keys.py): none of the rows holding the key is stored.
            issues = [
                *issues,
                Issue(
                    Category.CONFLICT,
                    "duplicate_key",
                    validator.key_header,
                    f"is also on {_other_rows(rows, row_number)}: none of these "
                    f"{len(rows)} rows is stored (keep the key on one row)",
                ),
            ]
            row = None
        if row is None:
            failed.append((row_number, safe_key(validator, cells), issues))
            continue
        earlier = valid.pop(row.key, None)
        if earlier is not None:
            superseded.append((earlier.row_number, row.key, row_number))
        valid[row.key] = row
    encoded = writer.encode(list(valid.values())) if valid else None
    return Checked(valid, failed, superseded, encoded)


def safe_key(validator: RowValidator, cells: list[str]) -> str:
    """The row's key for the logs, unless it is not a key at all (it might be PII)."""
    key = validator.key_of(cells)
    pattern = validator._key_pattern
    if pattern is not None and not pattern.fullmatch(key):
        return redact(key)[:64]
    return key[:200]


def _draw(size: int) -> float:
    return math.exp(math.log(1.0 - random.random()) / size)  # noqa: S311 - sampling


def _gap(weight: float) -> int:
    """How many rows further the next one enters the reservoir (at least 1)."""
    if weight >= 1.0:  # pragma: no cover - only if every draw rounded to 1
        return 1
    return math.floor(math.log(1.0 - random.random()) / math.log1p(-weight)) + 1  # noqa: S311

"""A run: one source, locked, read once, validated, compared, upserted in batches, verified.

``run_ingest`` is the one entry point (commands, tasks and the console call it). The run's
lifecycle is in its ``SyncRun`` row: ``pending`` → ``running`` (phase, progress) →
``succeeded`` | ``partial`` (some rows failed or are missing) | ``failed`` | ``cancelled``;
a second run of a busy source ends ``refused``. Each batch is one transaction holding its
rows, their record and error logs and the run's progress, so a cancel, a crash or a lost
connection leaves data, logs and counts consistent, and re-running is idempotent (I7).
A bad row is reported and never stops the others (I8); a lost database connection is
re-established (the advisory lock taken again) and the batch retried.

Modules: ``lock`` (the per-source advisory lock), ``database`` (a run's connection: retries,
reconnects, how a database error is categorised), ``batches`` (one batch: validate, write,
log, count), ``run`` (the run's lifecycle: start, prepare, load, verify, finish).
"""

from sync.ingest.pipeline.batches import Counts
from sync.ingest.pipeline.database import RETRYABLE_STATES, categorize, sqlstate
from sync.ingest.pipeline.lock import LOCK_CLASS, SourceLock, holder_of
from sync.ingest.pipeline.run import Ingestion, request_cancel, run_ingest, start_run

__all__ = [
    "LOCK_CLASS",
    "RETRYABLE_STATES",
    "Counts",
    "Ingestion",
    "SourceLock",
    "categorize",
    "holder_of",
    "request_cancel",
    "run_ingest",
    "sqlstate",
    "start_run",
]

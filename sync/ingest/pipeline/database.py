"""A run's database connection: retried operations, reconnects that take the lock again, and
what category a database error that one row caused falls in."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection

from sync.ingest.exceptions import RunAbortedError
from sync.ingest.sources import backoff_delay
from sync.models import ErrorLog, SyncRun
from sync.redaction import RedactPiiFilter, redact

if TYPE_CHECKING:
    from sync.ingest.pipeline.batches import Counts
    from sync.ingest.pipeline.lock import SourceLock
    from sync.ingest.source_definitions import SourceConfig

T = TypeVar("T")

logger = logging.getLogger(__name__)
logger.addFilter(RedactPiiFilter())

Category = ErrorLog.Category
# SQLSTATEs of failures that may pass on a later attempt: lock timeout, serialization,
# deadlock, statement timeout, out of resources.
RETRYABLE_STATES = {"55P03", "40001", "40P01", "57014", "53000", "53100", "53200", "53300"}


class RunConnection:
    """The connection handling of ``Ingestion`` (which sets ``config``, ``run``, ``lock`` and
    ``counts``)."""

    config: SourceConfig
    run: SyncRun
    lock: SourceLock
    counts: Counts

    def _update_run(self, **values: Any) -> None:
        # NOTE: the run's own row needs no lock: a run that lost its lock still records why.
        self._with_db(lambda: SyncRun.objects.filter(pk=self.run.pk).update(**values), locked=False)

    def _network_retry(self, attempt: int, error: Exception, delay: float) -> None:
        self.counts.add_error(Category.NETWORK)
        self._with_db(
            lambda: ErrorLog.objects.create(
                run_id=self.run.pk,
                source=self.config.name,
                category=Category.NETWORK,
                code="retry",
                retryable=True,
                reason=redact(f"attempt {attempt} failed: {error}; retrying in {delay:.2f}s"),
            )
        )

    def _with_db(self, operation: Callable[[], T], *, locked: bool = True) -> T:
        """``operation()``; a lost connection is re-established (and, for work that needs
        it, the lock re-taken), up to SYNC_INGEST_DB_RETRIES times with backoff."""
        for attempt in range(settings.SYNC_INGEST_DB_RETRIES + 1):
            try:
                # NOTE: no probe query before each batch: a connection lost while idle fails
                # the operation, and the except below probes and reconnects.
                if attempt or not self._usable(locked=locked, probe=False):
                    self._reconnect(attempt, locked=locked)
                return operation()
            except DatabaseError as e:
                if attempt == settings.SYNC_INGEST_DB_RETRIES or self._usable(locked=locked):
                    raise
                logger.warning(
                    "%s: connection lost (%s); reconnecting", self.config.name, type(e).__name__
                )
        raise AssertionError  # pragma: no cover - the loop returns or raises

    def _usable(self, *, locked: bool = True, probe: bool = True) -> bool:
        """The connection works (and, when ``locked``, is the one holding the lock); without
        ``probe``, as far as can be told without a round trip."""
        if locked:
            return self.lock.held() and self._connection_alive(probe)
        return connection.connection is None or self._connection_alive(probe)

    def _connection_alive(self, probe: bool = True) -> bool:
        raw = connection.connection
        if raw is None or raw.closed or (probe and not connection.is_usable()):
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
            msg = (
                "the connection to PostgreSQL was lost and another run took the source "
                "lock meanwhile; this run stopped"
            )
            raise RunAbortedError(msg)
        logger.warning("%s: reconnected to PostgreSQL, lock re-taken", self.config.name)
        ErrorLog.objects.create(
            run_id=self.run.pk,
            source=self.config.name,
            category=Category.DATABASE,
            code="reconnected",
            retryable=True,
            reason="connection to PostgreSQL lost; reconnected and retried the batch",
        )
        self.counts.add_error(Category.DATABASE)


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

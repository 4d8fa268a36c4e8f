"""The per-source lock: one run of a source at a time (a PostgreSQL session advisory lock)."""

from __future__ import annotations

from django.conf import settings
from django.db import connection

from sync.models import SyncRun

LOCK_CLASS = 0x5359  # "SY": the advisory lock namespace of ingestion


class SourceLock:
    """A session-level PostgreSQL advisory lock per source (taken on the run's connection)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.backend_pid: int | None = None
        self.previous_timeout: str | None = None  # the session's lock_timeout before
        self.previous_plans: str | None = None  # and its plan_cache_mode

    def acquire(self) -> bool:
        """Take the lock; with it, the session's ``lock_timeout`` becomes
        SYNC_INGEST_LOCK_TIMEOUT_MS (a row another process holds fails its row, not the run),
        set once here rather than by a round trip per batch, and restored by ``release``.

        So does ``plan_cache_mode``: the batch statement is prepared once, and its generic
        plan (index probes by construction, see ``upsert``) is used from the first batch;
        under ``auto`` PostgreSQL kept re-planning it for every batch (a tenth of the run's
        database time), with plans that hash a sequential scan of the intents table."""
        with connection.cursor() as cursor:
            # NOTE: OFFSET 0 keeps the subquery apart: the old value is read before the lock
            # is tried (and the new value set only when it is taken).
            cursor.execute(
                "SELECT s.before, s.plans, CASE WHEN pg_try_advisory_lock(%s, hashtext(%s))"
                " THEN set_config('lock_timeout', %s, false)"
                " || set_config('plan_cache_mode', 'force_generic_plan', false) END,"
                " pg_backend_pid() FROM (SELECT current_setting('lock_timeout') AS before,"
                " current_setting('plan_cache_mode') AS plans OFFSET 0) s",
                [LOCK_CLASS, self.source, f"{settings.SYNC_INGEST_LOCK_TIMEOUT_MS}ms"])
            before, plans, taken, pid = cursor.fetchone()
        self.backend_pid = pid if taken is not None else None
        if taken is not None and self.previous_timeout is None:
            self.previous_timeout, self.previous_plans = before, plans
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
                               " set_config('lock_timeout', %s, false),"
                               " set_config('plan_cache_mode', %s, false)",
                               [LOCK_CLASS, self.source, self.previous_timeout or "0",
                                self.previous_plans or "auto"])
        self.backend_pid = None


def holder_of(source: str) -> SyncRun | None:
    """The run that holds the source's lock (the newest active run of the source)."""
    return SyncRun.objects.filter(source=source, status=SyncRun.Status.RUNNING).order_by(
        "-created_at").first()

"""The per-source lock: one run of a source at a time (a PostgreSQL session advisory lock)."""

from __future__ import annotations

from django.conf import settings
from django.db import connection

from sync.models import SyncRun

LOCK_CLASS = 0x5359  # "SY": the advisory lock namespace of ingestion


def run_settings() -> dict[str, str]:
    """The session settings of a run, set with its lock and restored with it.

    * ``lock_timeout``: a row another process holds fails its row, not the run.
    * ``plan_cache_mode``: the batch statement is prepared once and its generic plan used
      from the first batch; under ``auto`` PostgreSQL re-planned it for every batch (a tenth
      of the run's database time).
    * ``enable_seqscan``: every table the batch statement reads it reads by key, so index
      probes are always right; but a plan made while a table looked small (or its statistics
      predate the run's own rows, dead ones included) scans it whole, for every row. Off, a
      sequential scan is chosen only where nothing else can answer.
    """
    return {
        "lock_timeout": f"{settings.SYNC_INGEST_LOCK_TIMEOUT_MS}ms",
        "plan_cache_mode": "force_generic_plan",
        "enable_seqscan": "off",
    }


class SourceLock:
    """A session-level PostgreSQL advisory lock per source (taken on the run's connection)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.backend_pid: int | None = None
        self.previous: dict[str, str] | None = None  # the session's settings before the run

    def acquire(self) -> bool:
        """Take the lock; with it, the session gets the run's settings (``run_settings``), set
        once here rather than by a round trip per batch, and restored by ``release``."""
        wanted = run_settings()
        names = list(wanted)
        # NOTE (S608): the names are the fixed keys above; every value is a parameter.
        # OFFSET 0 keeps the subquery apart: the old values are read before the lock is
        # tried (and the new ones set only when it is taken).
        before = ", ".join(f"current_setting('{name}') AS b{i}" for i, name in enumerate(names))
        sets = " || ".join(f"set_config('{name}', %s, false)" for name in names)
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT s.*, CASE WHEN pg_try_advisory_lock(%s, hashtext(%s)) THEN {sets} END"  # noqa: S608
                f" FROM (SELECT {before} OFFSET 0) s",
                [LOCK_CLASS, self.source, *wanted.values()],
            )
            *previous, taken = cursor.fetchone()
        # NOTE: the client's idea of its backend (what ``held`` compares), not
        # pg_backend_pid(): behind PgBouncer the two differ, and every batch looked like a
        # lost connection (reconnect, lock taken again).
        self.backend_pid = connection.connection.info.backend_pid if taken is not None else None
        if taken is not None and self.previous is None:
            self.previous = dict(zip(names, previous, strict=True))
        return taken is not None

    def held(self) -> bool:
        """Still held: the connection that took it is the one we have (no query needed)."""
        raw = connection.connection
        return (
            self.backend_pid is not None
            and raw is not None
            and not raw.closed
            and raw.info.backend_pid == self.backend_pid
        )

    def release(self) -> None:
        if self.held():
            previous = self.previous or {}
            restore = "".join(f", set_config('{name}', %s, false)" for name in previous)
            with connection.cursor() as cursor:
                cursor.execute(
                    f"SELECT pg_advisory_unlock(%s, hashtext(%s)){restore}",
                    [LOCK_CLASS, self.source, *previous.values()],
                )
        self.backend_pid = None


def holder_of(source: str) -> SyncRun | None:
    """The run that holds the source's lock (the newest active run of the source)."""
    return (
        SyncRun.objects.filter(source=source, status=SyncRun.Status.RUNNING)
        .order_by("-created_at")
        .first()
    )

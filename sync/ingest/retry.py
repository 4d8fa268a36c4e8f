"""The record retry queue, ``retry_queue``.

Rows that failed for a reason that may pass (database error, lock timeout, network) are queued
per (source, natural key) with exponential backoff; a row that fails again bumps its attempts,
and after ``SYNC_INGEST_RETRY_MAX_ATTEMPTS`` it becomes ``permanently_failed`` (an alert).
Validation and schema errors are never queued: retrying cannot fix them. A row stored by any
run leaves the queue. ``due`` hands ``sync_retry_records`` the keys to re-read from the sheet.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence

from django.conf import settings
from django.db import connection
from django.db.models import Count

from sync.ingest.alerts import raise_alert
from sync.models import RecordRetry
from sync.redaction import RedactPiiFilter, redact

logger = logging.getLogger(__name__)
logger.addFilter(RedactPiiFilter())


def enqueue(
    *, source: str, location: str, run_id: int, failures: Sequence[tuple[str, int | None, str, str]]
) -> list[str]:
    """Queue (or bump) ``(key, row_number, category, error)`` failures; returns the keys that
    just became permanently failed."""
    if not failures:
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO retry_queue AS q (source, natural_key, location, row_number, category,
                last_error, attempts, status, next_retry_at, last_run_id, created_at, updated_at)
            SELECT %s, f.key, %s, f.row_number, f.category, f.error, 1,
                   CASE WHEN 1 >= %s THEN 'permanently_failed' ELSE 'pending' END,
                   now() + make_interval(secs => %s * (0.5 + random() / 2)), %s, now(), now()
            FROM unnest(%s::text[], %s::int[], %s::text[], %s::text[])
                 AS f(key, row_number, category, error)
            ON CONFLICT (source, natural_key) DO UPDATE SET
                location = EXCLUDED.location, row_number = EXCLUDED.row_number,
                category = EXCLUDED.category, last_error = EXCLUDED.last_error,
                attempts = q.attempts + 1,
                status = CASE WHEN q.attempts + 1 >= %s THEN 'permanently_failed'
                              ELSE 'pending' END,
                next_retry_at = now() + make_interval(secs => least(
                    %s * power(2, q.attempts), %s) * (0.5 + random() / 2)),
                last_run_id = EXCLUDED.last_run_id, updated_at = now()
            RETURNING q.natural_key, q.status, q.attempts
            """,
            [
                source,
                location,
                settings.SYNC_INGEST_RETRY_MAX_ATTEMPTS,
                settings.SYNC_INGEST_RETRY_BACKOFF_BASE,
                run_id,
                [f[0] for f in failures],
                [f[1] for f in failures],
                [f[2] for f in failures],
                [redact(f[3])[:1000] for f in failures],
                settings.SYNC_INGEST_RETRY_MAX_ATTEMPTS,
                settings.SYNC_INGEST_RETRY_BACKOFF_BASE,
                settings.SYNC_INGEST_RETRY_BACKOFF_CAP,
            ],
        )
        rows = cursor.fetchall()
    dead = [
        key for key, status, _attempts in rows if status == RecordRetry.Status.PERMANENTLY_FAILED
    ]
    if dead:
        raise_alert(
            "permanent_failure",
            source,
            f"{len(dead)} row(s) permanently failed after "
            f"{settings.SYNC_INGEST_RETRY_MAX_ATTEMPTS} attempts",
            {"keys": dead[:50], "run_id": run_id},
        )
    return dead


def resolve(*, source: str, keys: list[str]) -> int:
    """Rows stored (or no longer failing) leave the queue."""
    if not keys:
        return 0
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM retry_queue WHERE source = %s AND natural_key = ANY(%s)", [source, keys]
        )
        return cursor.rowcount


def has_entries(source: str) -> bool:
    return RecordRetry.objects.filter(source=source).exists()


def due(
    *,
    source: str | None = None,
    include_not_due: bool = False,
) -> dict[tuple[str, str], list[str]]:
    """Pending entries whose backoff ran out, grouped by (source, location)."""
    entries = RecordRetry.objects.filter(status=RecordRetry.Status.PENDING)
    if source:
        entries = entries.filter(source=source)
    if not include_not_due:
        entries = entries.filter(next_retry_at__lte=_now())
    grouped: dict[tuple[str, str], list[str]] = defaultdict(list)
    for src, location, key in entries.order_by("next_retry_at").values_list(
        "source", "location", "natural_key"
    ):
        grouped[(src, location)].append(key)
    return dict(grouped)


def forget_missing(*, source: str, keys: list[str]) -> int:
    """Entries whose row is no longer in the sheet: nothing left to retry."""
    removed = resolve(source=source, keys=keys)
    if removed:
        logger.info("%s: %d queued row(s) are no longer in the sheet; dropped", source, removed)
    return removed


def _now():
    with connection.cursor() as cursor:
        cursor.execute("SELECT now()")
        return cursor.fetchone()[0]


def stats() -> dict[str, dict[str, int]]:
    """Entries per source and status (sync_health)."""
    found: dict[str, dict[str, int]] = defaultdict(dict)
    for src, status, count in (
        RecordRetry.objects.values_list("source", "status").annotate(count=Count("id")).order_by()
    ):
        found[src][status] = count
    return dict(found)

"""Run statistics over a window (the console's figures and ``/metrics``), the per-run rows
of ``sync_metrics`` and the periodic checks of ``sync_health_metrics``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.db import connection, connections
from django.db.models import Count

from sync.models import RecordRetry, SyncConfig, SyncHealthMetric, SyncRun
from sync.replicas import read_alias

ALL = "*"  # the key of the figures over every source

_STATISTICS = """
    WITH runs AS (
        SELECT source, status, created_at, throughput,
               extract(epoch FROM finished_at - started_at)::float8 AS seconds
        FROM sync_audit_logs
        WHERE NOT dry_run AND status IN ('succeeded', 'partial', 'failed')
          AND created_at >= now() - make_interval(secs => %(since)s))
    SELECT coalesce(source, '*'),
           count(*) FILTER (WHERE w), avg(seconds) FILTER (WHERE w),
           percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds) FILTER (WHERE w),
           percentile_cont(0.95) WITHIN GROUP (ORDER BY seconds) FILTER (WHERE w),
           avg(throughput) FILTER (WHERE w),
           count(*) FILTER (WHERE d), count(*) FILTER (WHERE d AND status = 'succeeded'),
           count(*) FILTER (WHERE k), count(*) FILTER (WHERE k AND status = 'succeeded')
    FROM (SELECT *, created_at >= now() - make_interval(secs => %(window)s) AS w,
                 created_at >= now() - interval '24 hours' AS d,
                 created_at >= now() - interval '7 days' AS k FROM runs) AS r
    GROUP BY GROUPING SETS ((source), ())
"""

_RECORD_RUNS = """
    INSERT INTO sync_metrics (run_id, source, status, finished_at, duration_seconds,
                              throughput, rows_total, failed, phase_ms, errors_by_category)
    SELECT id, source, status, finished_at, extract(epoch FROM finished_at - started_at),
           throughput, rows_total, failed, phase_ms, errors_by_category
    FROM sync_audit_logs r
    WHERE NOT dry_run AND status IN ('succeeded', 'partial', 'failed')
      AND started_at IS NOT NULL AND finished_at IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM sync_metrics m WHERE m.run_id = r.id)
    ON CONFLICT (run_id) DO NOTHING
"""


@dataclass(frozen=True)
class RunStatistics:
    source: str
    runs: int  # finished runs in the window
    mean_seconds: float | None
    median_seconds: float | None
    p95_seconds: float | None
    mean_throughput: float | None
    success_rate_24h: float | None  # succeeded / finished; None without runs
    success_rate_7d: float | None


def _rate(ok: int, total: int) -> float | None:
    return ok / total if total else None


def run_statistics(*, window: timedelta = timedelta(days=7)) -> dict[str, RunStatistics]:
    """Per source, and over all sources under ``ALL``: durations and throughput over the
    window, success rates over 24 hours and 7 days (one query)."""
    week = timedelta(days=7).total_seconds()
    found = {}
    # A report: a replica's within a block of stale-tolerant reads (sync/replicas.py).
    with connections[read_alias()].cursor() as cursor:
        cursor.execute(
            _STATISTICS,
            {"window": window.total_seconds(), "since": max(week, window.total_seconds())},
        )
        for (
            source,
            runs,
            mean,
            median,
            p95,
            throughput,
            day,
            day_ok,
            week_n,
            week_ok,
        ) in cursor.fetchall():
            found[source] = RunStatistics(
                source,
                runs,
                mean,
                median,
                p95,
                throughput,
                _rate(day_ok, day),
                _rate(week_ok, week_n),
            )
    return found


def record_run_metrics() -> int:
    """A ``sync_metrics`` row for every finished run that has none yet (idempotent)."""
    with connection.cursor() as cursor:
        cursor.execute(_RECORD_RUNS)
        return cursor.rowcount


def record_health(config: SyncConfig, stats: RunStatistics | None) -> SyncHealthMetric:
    """One health check of a source: sheet vs database count, gaps and error rate of the
    latest run, the 24 h success rate and the record retry queue."""
    run = (
        SyncRun.objects.filter(
            source=config.source, dry_run=False, status__in=("succeeded", "partial", "failed")
        )
        .order_by("-created_at", "-pk")
        .first()
    )
    queue = dict(
        RecordRetry.objects.filter(source=config.source)
        .values_list("status")
        .annotate(n=Count("id"))
        .values_list("status", "n")
    )
    verification = run.verification if run else {}
    return SyncHealthMetric.objects.create(
        source=config.source,
        sheet_count=verification.get("sheet_count"),
        database_count=verification.get("database_count"),
        gaps=run.gaps if run else None,
        error_rate=run.failed / run.rows_total if run and run.rows_total else None,
        success_rate_24h=stats.success_rate_24h if stats else None,
        retry_pending=queue.get(RecordRetry.Status.PENDING, 0),
        retry_permanent=queue.get(RecordRetry.Status.PERMANENTLY_FAILED, 0),
    )

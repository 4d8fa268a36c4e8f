"""The dashboard's figures (selectors): one dict, rendered by the admin index and served as
JSON by ``GET /api/sync/dashboard``, which the page polls to stay live.

A handful of queries whatever the history: the latest run per source with ``DISTINCT ON``,
the statistics of ``sync.ops.stats`` (one query), the 7-day trend bucketed in SQL, the
retry-queue figures of ``sync.cache.metrics`` (one aggregate), and the last cache verification.
Nothing here carries PII: sources, counts, and alert messages (redacted when raised).
"""

from __future__ import annotations

import asyncio
import math
from datetime import datetime, timedelta

from asgiref.sync import async_to_sync
from django.conf import settings
from django.db import connections
from django.utils import timezone

from sync.cache.metrics import queue_figures
from sync.console import formats
from sync.ingest.exceptions import SourceConfigError
from sync.ingest.source_definitions import load_sources
from sync.models import CacheVerification, SyncAlert, SyncRun
from sync.ops.health import checks as service_checks
from sync.ops.stats import run_statistics
from sync.replicas import read_alias, stale_reads

TREND_DAYS = 7
TREND_BUCKET_HOURS = 4
TREND_BUCKETS = TREND_DAYS * 24 // TREND_BUCKET_HOURS
RECENT_ALERTS = 8
FINISHED = (
    SyncRun.Status.SUCCEEDED,
    SyncRun.Status.PARTIAL,
    SyncRun.Status.FAILED,
    SyncRun.Status.CANCELLED,
)
HEALTH_NAMES = {
    "Database(alias='default')": "PostgreSQL",
    "Cache Redis": "Cache Redis",
    # "cache cold / warming, N%" after a data loss (sync/cache/autowarm.py)
    "Cache warmth": "Cache warmth",
    "Broker Redis": "Broker Redis",
    "Celery worker": "Celery worker",
}

_TREND = """
    SELECT source,
           least(greatest(floor(extract(epoch FROM statement_timestamp() - created_at)
                                / %(bucket)s)::int, 0), %(last)s),
           count(*), avg(extract(epoch FROM finished_at - started_at))::float8,
           sum(rows_done), sum(failed), count(*) FILTER (WHERE status = 'failed')
    FROM sync_audit_logs
    WHERE NOT dry_run AND status IN ('succeeded', 'partial', 'failed', 'cancelled')
      AND created_at >= statement_timestamp() - make_interval(secs => %(since)s)
    GROUP BY 1, 2
"""


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def run_data(run: SyncRun) -> dict:
    """A run as the progress bar and the summary need it."""
    finished = run.status not in SyncRun.ACTIVE
    if finished and run.status in (SyncRun.Status.SUCCEEDED, SyncRun.Status.PARTIAL):
        percent = 100
    elif run.rows_total:
        percent = min(100, run.rows_done * 100 // run.rows_total)
    else:
        percent = 0
    end = run.finished_at or timezone.now()
    return {
        "id": run.pk,
        "source": run.source,
        "target": run.target,
        "trigger": run.trigger,
        "trigger_label": run.get_trigger_display(),
        "status": run.status,
        "phase": run.phase,
        "finished": finished,
        "dry_run": run.dry_run,
        "cancel_requested": run.cancel_requested,
        "rows_done": run.rows_done,
        "rows_total": run.rows_total,
        "percent": percent,
        "created": run.created,
        "updated": run.updated,
        "unchanged": run.unchanged,
        "failed": run.failed,
        "gaps": run.gaps,
        "batch_size": run.batch_size,
        # NOTE: to the millisecond: a small sheet's whole run takes a few of them.
        "duration_seconds": round((end - run.started_at).total_seconds(), 3)
        if run.started_at
        else None,
        "created_at": iso(run.created_at),
        "started_at": iso(run.started_at),
        "finished_at": iso(run.finished_at),
        "message": run.message,
        "errors_by_category": run.errors_by_category,
    }


def alert_data(alert: SyncAlert) -> dict:
    return {
        "id": alert.pk,
        "type": alert.alert_type,
        "type_label": alert.get_alert_type_display(),
        "severity": alert.severity,
        "source": alert.source,
        "message": alert.message,
        "count": alert.count,
        "first_seen_at": iso(alert.first_seen_at),
        "last_seen_at": iso(alert.last_seen_at),
        "acknowledged_at": iso(alert.acknowledged_at),
        "acknowledged_by": alert.acknowledged_by.get_username() if alert.acknowledged_by else None,
    }


def health_checks() -> list[dict]:
    """/health/'s checks (PostgreSQL, cache Redis and its warmth, broker Redis, a worker)."""

    async def gather() -> list:
        return await asyncio.gather(*(c.get_result() for c in service_checks()))

    return [
        {
            "name": HEALTH_NAMES.get(repr(r.check), repr(r.check)),
            "ok": r.error is None,
            "error": str(r.error) if r.error else "",
            "ms": round(r.time_taken * 1000, 1),
        }
        for r in async_to_sync(gather)()
    ]


def queue_data() -> dict:
    figures = queue_figures()
    return {
        "pending": figures["pending"],
        "dead": figures["dead"],
        "oldest_seconds": round(figures["oldest_seconds"], 1),
    }


def consistency_data() -> dict | None:
    last = CacheVerification.objects.order_by("-checked_at", "-pk").first()
    if last is None:
        return None
    return {
        "checked_at": iso(last.checked_at),
        "rows": last.rows,
        "consistent": last.consistent,
        "fraction": last.fraction,
        "nines": None if math.isinf(last.nines) else round(last.nines, 2),
        "missing": last.missing,
        "stale": last.stale,
        "extra": last.extra,
        "repaired": last.repaired,
        "models": sorted(last.by_model),
    }


LIVE_TREND_MINUTES = 30
LIVE_BAR_HEIGHT = 40  # px of a minute at 5 nines or more (the scale is nines, not percent)
STALE_AFTER_TICKS = 10  # sampler intervals without a sample before the figure is stale
STALE_AFTER_MIN = 30.0  # seconds, whatever the interval


def _percent(fraction: float | None) -> str:
    """99.991%, but 100% only when nothing at all is off; a dash without samples."""
    if fraction is None:
        return "\u2013"  # an en dash
    return formats.percent(min(fraction, 1.0), 3)


def cache_redis_error(health: list[dict] | None = None) -> str:
    """Why the cache Redis cannot be read now ("" when it answers): the health check's
    error when the checks ran, else one PING behind the engine's breaker (bounded by
    REDIS_SOCKET_TIMEOUT)."""
    from sync.cache import connection
    from sync.cache.exceptions import CacheUnavailableError

    for check in health or ():
        if check["name"] == "Cache Redis":
            return "" if check["ok"] else check["error"] or "unreachable"
    try:
        connection.run(lambda client: client.ping())
    except CacheUnavailableError as e:
        return str(e)
    return ""


def _stale_after() -> float:
    return max(STALE_AFTER_MIN, STALE_AFTER_TICKS * settings.SYNC_SAMPLER_INTERVAL)


def live_consistency_data(*, redis_error: str | None = None) -> dict:
    """The sampler's figures (sync.ops.sampler): consistent within 1 / 10 / 60 s of a write
    over its window, and a per-minute trend of the 10 s figure drawn on a scale of nines.

    The figure is shown big only while it is current (``freshness``): with the cache Redis
    unreachable (now, or at the sampler's last check) it is "unknown", and when the newest
    sample is older than a few sampler intervals (no worker, no beat) it is "stale", each with
    the reason in ``freshness_note``; the last figure is then small print, never a big green
    100%."""
    from django.db.models import Max

    from sync.models import ConsistencySample
    from sync.ops.sampler import consistency_figures, consistency_trend

    figures = consistency_figures()
    windows = [
        {
            "seconds": w.seconds,
            "samples": w.samples,
            "fraction": w.fraction,
            "percent": _percent(w.fraction),
            "nines": None if w.nines is None or math.isinf(w.nines) else round(w.nines, 2),
        }
        for w in figures.windows.values()
    ]
    ten = figures.windows[10]
    slo = settings.SYNC_CONSISTENCY_SLO
    state = (
        "quiet"
        if ten.fraction is None
        else "good"
        if ten.fraction >= 1
        else "warn"
        if ten.fraction >= slo and not figures.unreachable
        else "bad"
    )
    # NOTE: "headline" and "state" stay the last figure (the JSON API's meaning); whether
    # it is current is "freshness", which the card puts first.
    freshness, note = "current", ""
    newest = ConsistencySample.objects.aggregate(at=Max("checked_at"))["at"]
    last = (
        ConsistencySample.objects.filter(checked_at=newest)
        .values_list("unreachable", flat=True)
        .first()
        if newest
        else None
    )
    if redis_error is None:
        redis_error = cache_redis_error()
    age = (timezone.now() - newest).total_seconds() if newest else None
    if redis_error or last:
        freshness = "unknown"
        note = (
            "cache Redis unreachable"
            if redis_error
            else "cache Redis unreachable at the sampler's last check"
        )
    elif age is not None and age > _stale_after():
        freshness = "stale"
        note = f"last sample {formats.ago(newest)}: is a worker running the sampler?"
    bars = []
    for i, minute in enumerate(consistency_trend(minutes=LIVE_TREND_MINUTES)):
        fraction = minute["fraction"]
        if fraction is None:
            continue
        nines = 5.0 if fraction >= 1 else min(5.0, -math.log10(1 - fraction))
        height = max(1, round(nines / 5 * LIVE_BAR_HEIGHT))
        bars.append(
            {
                "x": i * 8,
                "y": LIVE_BAR_HEIGHT - height,
                "height": height,
                "class": "trend-rows" if fraction >= slo else "trend-errors",
                "title": f"{formats.when(minute['minute'])}: {_percent(fraction)} "
                f"within 10 s ({formats.number(minute['samples'])} samples)",
            }
        )
    return {
        "windows": windows,
        "headline": _percent(ten.fraction),
        "state": state,
        "freshness": freshness,
        "freshness_note": note,
        "last_sample_at": iso(newest),
        "last_sample_age": formats.ago(newest) if newest else None,
        "unreachable": figures.unreachable,
        "over_seconds": figures.over_seconds,
        "slo": slo,
        "bars": bars,
        "bar_height": LIVE_BAR_HEIGHT,
    }


def processes_data() -> list[dict]:
    """Workers, beat and web processes by their heartbeats: alive or silent, and restarts."""
    from sync.models import ProcessHeartbeat

    stale = timezone.now() - timedelta(seconds=settings.SYNC_WORKER_STALE_AFTER)
    return [
        {
            "kind": p.kind,
            "node": p.node,
            "pid": p.pid,
            "restarts": p.restarts,
            "alive": p.stopped_at is None and p.last_seen_at >= stale,
            "started_at": iso(p.started_at),
            "last_seen_at": iso(p.last_seen_at),
        }
        for p in ProcessHeartbeat.objects.exclude(kind=ProcessHeartbeat.Kind.WEB).order_by(
            "kind", "node"
        )
    ]


def _latest(runs) -> dict[str, SyncRun]:
    return {
        run.source: run for run in runs.order_by("source", "-created_at", "-pk").distinct("source")
    }


def trends() -> dict[str, list[dict]]:
    """Per source, ``TREND_BUCKETS`` buckets of ``TREND_BUCKET_HOURS`` (oldest first):
    runs, mean seconds, rows processed, failed rows and failed runs."""
    bucket = TREND_BUCKET_HOURS * 3600
    found: dict[str, list[dict]] = {}
    with connections[read_alias()].cursor() as cursor:
        cursor.execute(
            _TREND, {"bucket": bucket, "since": TREND_BUCKETS * bucket, "last": TREND_BUCKETS - 1}
        )
        for source, age, runs, seconds, rows, failed, failed_runs in cursor.fetchall():
            buckets = found.setdefault(
                source,
                [
                    {"runs": 0, "seconds": None, "rows": 0, "errors": 0, "failed_runs": 0}
                    for _ in range(TREND_BUCKETS)
                ],
            )
            # NOTE: ages are clamped in SQL (so such runs group with their neighbours): a
            # run created at the window's very start is TREND_BUCKETS old, one stamped by a
            # clock a little ahead of the database's is -1.
            buckets[TREND_BUCKETS - 1 - age] = {
                "runs": runs,
                "seconds": round(seconds, 2) if seconds is not None else None,
                "rows": int(rows),
                "errors": int(failed),
                "failed_runs": failed_runs,
            }
    return found


def source_names() -> tuple[list[str], str]:
    """The configured sources (and an error message when the sources file is unreadable:
    then the sources that have runs)."""
    try:
        return sorted(load_sources()), ""
    except SourceConfigError as e:
        names = SyncRun.objects.order_by("source").values_list("source", flat=True).distinct()
        return list(names), str(e)


def sources_data() -> tuple[list[dict], str]:
    names, error = source_names()
    stats = run_statistics()
    active = _latest(SyncRun.objects.filter(status__in=SyncRun.ACTIVE))
    # NOTE: an upload's preview is a dry run: it is not the source's last sync.
    last = _latest(SyncRun.objects.filter(status__in=FINISHED, dry_run=False))
    gaps = _latest(SyncRun.objects.filter(status__in=FINISHED, dry_run=False, gaps__isnull=False))
    trend = trends()
    rows = []
    for name in names:
        stat = stats.get(name)
        rows.append(
            {
                "source": name,
                "active_run": run_data(active[name]) if name in active else None,
                "last_run": run_data(last[name]) if name in last else None,
                "success_rate_24h": stat.success_rate_24h if stat else None,
                "success_rate_7d": stat.success_rate_7d if stat else None,
                "runs_7d": sum(b["runs"] for b in trend.get(name, [])),
                "gaps": gaps[name].gaps if name in gaps else None,
                "trend": trend.get(name, []),
            }
        )
    return rows, error


def alerts_data(limit: int = RECENT_ALERTS) -> tuple[list[dict], int]:
    """The most recent open alerts, and how many are open in all."""
    open_alerts = SyncAlert.objects.filter(acknowledged_at__isnull=True)
    recent = open_alerts.select_related("acknowledged_by").order_by("-last_seen_at", "-pk")
    return [alert_data(a) for a in recent[:limit]], open_alerts.count()


def dashboard_data(*, health: bool = True) -> dict:
    """Everything the dashboard shows; ``health=False`` skips the service checks (the page
    renders at once and fetches them). Its figures are reports: with read replicas they are
    read from one (``sync.replicas``), as old as its lag at most."""
    checks = health_checks() if health else None
    with stale_reads():
        sources, sources_error = sources_data()
        alerts, open_count = alerts_data()
        return {
            "generated_at": iso(timezone.now()),
            "health": checks,
            "queue": queue_data(),
            "consistency": consistency_data(),
            "live_consistency": live_consistency_data(
                redis_error=cache_redis_error(checks) if checks else None
            ),
            "processes": processes_data(),
            "sources": sources,
            "sources_error": sources_error,
            "alerts": alerts,
            "open_alerts": open_count,
            "trend": {
                "days": TREND_DAYS,
                "bucket_hours": TREND_BUCKET_HOURS,
                "buckets": TREND_BUCKETS,
            },
        }

"""Prometheus metrics of the sync engine; gauges are refreshed when ``/metrics`` is scraped."""

from __future__ import annotations

from django.db import connection
from django.db.models import Count
from prometheus_client import Counter, Gauge

CACHE_READS = Counter("sync_cache_reads", "Repository reads by outcome",
                      ["model", "outcome"])
RETRY_QUEUE_SIZE = Gauge("sync_retry_queue_size", "Intents in sync_retry_queue", ["status"])
RETRY_QUEUE_OLDEST = Gauge("sync_retry_queue_oldest_seconds",
                           "Age of the oldest pending intent in sync_retry_queue")


def queue_figures() -> dict[str, float]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FILTER (WHERE status = 'pending'),"
            " count(*) FILTER (WHERE status = 'dead'),"
            " coalesce(extract(epoch FROM now() - min(created_at)"
            "   FILTER (WHERE status = 'pending')), 0)"
            " FROM sync_retry_queue"
        )
        pending, dead, oldest = cursor.fetchone()
    return {"pending": pending, "dead": dead, "oldest_seconds": float(oldest)}


def refresh_gauges() -> None:
    """Read the current figures from PostgreSQL into the gauges (one aggregate query)."""
    figures = queue_figures()
    RETRY_QUEUE_SIZE.labels("pending").set(figures["pending"])
    RETRY_QUEUE_SIZE.labels("dead").set(figures["dead"])
    RETRY_QUEUE_OLDEST.set(figures["oldest_seconds"])
    refresh_ops_gauges()
    refresh_consistency_gauges()


# --------------------------------------------------------------------------- operations

RUN_DURATION = Gauge("sync_run_duration_seconds",
                     "Duration of finished runs over the last 7 days", ["source", "stat"])
RUN_THROUGHPUT = Gauge("sync_run_throughput_rows_per_second",
                       "Mean throughput of finished runs over the last 7 days", ["source"])
RUN_SUCCESS_RATE = Gauge("sync_run_success_rate", "Succeeded / finished runs",
                         ["source", "window"])
ALERTS_OPEN = Gauge("sync_alerts_open", "Unacknowledged alerts", ["type", "severity"])


def refresh_ops_gauges() -> None:
    """Run statistics per source (``*``: all sources) and open alerts, from PostgreSQL."""
    from sync.models import SyncAlert
    from sync.ops.stats import run_statistics

    for gauge in (RUN_DURATION, RUN_THROUGHPUT, RUN_SUCCESS_RATE, ALERTS_OPEN):
        gauge.clear()  # a source or alert type that is gone must not linger
    for source, stats in run_statistics().items():
        for stat in ("mean", "median", "p95"):
            value = getattr(stats, f"{stat}_seconds")
            if value is not None:  # None: its runs never started (failed before)
                RUN_DURATION.labels(source, stat).set(value)
        if stats.mean_throughput is not None:
            RUN_THROUGHPUT.labels(source).set(stats.mean_throughput)
        for window, rate in (("24h", stats.success_rate_24h), ("7d", stats.success_rate_7d)):
            if rate is not None:
                RUN_SUCCESS_RATE.labels(source, window).set(rate)
    open_alerts = SyncAlert.objects.filter(acknowledged_at__isnull=True).values_list(
        "alert_type", "severity").annotate(n=Count("id")).order_by()
    for alert_type, severity, count in open_alerts:
        ALERTS_OPEN.labels(alert_type, severity).set(count)


# --------------------------------------------------------------------------- consistency

CONSISTENCY_WITHIN = Gauge(
    "sync_consistency_within_ratio",
    "Share of sampled writes consistent in Redis within the window (the sampler)", ["window"])
CONSISTENCY_NINES = Gauge(
    "sync_consistency_nines", "-log10 of the inconsistent share within the window "
    "(absent when every sample agrees)", ["window"])
CONSISTENCY_SAMPLES = Gauge(
    "sync_consistency_samples", "Samples behind the figure of the window", ["window"])
CONSISTENCY_UNREACHABLE = Gauge(
    "sync_consistency_unreachable_samples",
    "Samples whose last check could not read the cache Redis")


def refresh_consistency_gauges() -> None:
    """The sampler's figures over its SLO window (``sync.ops.sampler``, one query)."""
    from sync.ops.sampler import consistency_figures

    figures = consistency_figures()
    for gauge in (CONSISTENCY_WITHIN, CONSISTENCY_NINES, CONSISTENCY_SAMPLES):
        gauge.clear()  # a window without samples has no figure, not an old one
    for seconds, window in figures.windows.items():
        label = f"{seconds}s"
        CONSISTENCY_SAMPLES.labels(label).set(window.samples)
        if window.fraction is not None:
            CONSISTENCY_WITHIN.labels(label).set(window.fraction)
            if window.fraction < 1:
                CONSISTENCY_NINES.labels(label).set(window.nines)
    CONSISTENCY_UNREACHABLE.set(figures.unreachable)

"""Prometheus metrics: counters each process keeps, and figures read from PostgreSQL when
``/metrics`` is scraped.

Several web and worker processes: with ``PROMETHEUS_MULTIPROC_DIR`` set (before any process
starts; an empty directory per deployment, emptied at start), every process writes its
counters to files there and a scrape sums them over all processes (prometheus-client's
multiprocess mode). The database figures are not process state at all: a collector reads them
at scrape time, so they appear once, whichever process answers the scrape.
"""

from __future__ import annotations

import os

from django.db import connection
from django.db.models import Count
from prometheus_client import REGISTRY, CollectorRegistry, Counter, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

CACHE_READS = Counter("sync_cache_reads", "Repository reads by outcome", ["model", "outcome"])


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


def _gauge(name: str, documentation: str, labels: list[str] | None = None) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, labels=labels)


def queue_metrics() -> list[GaugeMetricFamily]:
    figures = queue_figures()
    size = _gauge("sync_retry_queue_size", "Intents in sync_retry_queue", ["status"])
    size.add_metric(["pending"], figures["pending"])
    size.add_metric(["dead"], figures["dead"])
    oldest = _gauge(
        "sync_retry_queue_oldest_seconds", "Age of the oldest pending intent in sync_retry_queue"
    )
    oldest.add_metric([], figures["oldest_seconds"])
    return [size, oldest]


def ops_metrics() -> list[GaugeMetricFamily]:
    """Run statistics per source (``*``: all sources) and open alerts, from PostgreSQL."""
    from sync.models import SyncAlert
    from sync.ops.stats import run_statistics

    duration = _gauge(
        "sync_run_duration_seconds",
        "Duration of finished runs over the last 7 days",
        ["source", "stat"],
    )
    throughput = _gauge(
        "sync_run_throughput_rows_per_second",
        "Mean throughput of finished runs over the last 7 days",
        ["source"],
    )
    success = _gauge("sync_run_success_rate", "Succeeded / finished runs", ["source", "window"])
    alerts = _gauge("sync_alerts_open", "Unacknowledged alerts", ["type", "severity"])
    for source, stats in run_statistics().items():
        for stat in ("mean", "median", "p95"):
            value = getattr(stats, f"{stat}_seconds")
            if value is not None:  # None: its runs never started (failed before)
                duration.add_metric([source, stat], value)
        if stats.mean_throughput is not None:
            throughput.add_metric([source], stats.mean_throughput)
        for window, rate in (("24h", stats.success_rate_24h), ("7d", stats.success_rate_7d)):
            if rate is not None:
                success.add_metric([source, window], rate)
    open_alerts = (
        SyncAlert.objects.filter(acknowledged_at__isnull=True)
        .values_list("alert_type", "severity")
        .annotate(n=Count("id"))
        .order_by()
    )
    for alert_type, severity, count in open_alerts:
        alerts.add_metric([alert_type, severity], count)
    return [duration, throughput, success, alerts]


def consistency_metrics() -> list[GaugeMetricFamily]:
    """The sampler's figures over its SLO window (``sync.ops.sampler``, one query); a window
    without samples has no figure."""
    from sync.ops.sampler import consistency_figures

    figures = consistency_figures()
    within = _gauge(
        "sync_consistency_within_ratio",
        "Share of sampled writes consistent in Redis within the window (the sampler)",
        ["window"],
    )
    nines = _gauge(
        "sync_consistency_nines",
        "-log10 of the inconsistent share within the window (absent when every sample agrees)",
        ["window"],
    )
    samples = _gauge(
        "sync_consistency_samples", "Samples behind the figure of the window", ["window"]
    )
    unreachable = _gauge(
        "sync_consistency_unreachable_samples",
        "Samples whose last check could not read the cache Redis",
    )
    for seconds, window in figures.windows.items():
        label = f"{seconds}s"
        samples.add_metric([label], window.samples)
        if window.fraction is not None:
            within.add_metric([label], window.fraction)
            if window.fraction < 1:
                nines.add_metric([label], window.nines)
    unreachable.add_metric([], figures.unreachable)
    return [within, nines, samples, unreachable]


class DatabaseFigures(Collector):
    """What PostgreSQL knows (every process sees the same), read at each scrape."""

    def collect(self):
        yield from queue_metrics()
        yield from ops_metrics()
        yield from consistency_metrics()


def render_metrics() -> bytes:
    """The text exposition of a scrape: the processes' counters (summed over every process in
    multiprocess mode) and the database figures."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        processes = CollectorRegistry()
        multiprocess.MultiProcessCollector(processes)
    else:
        processes = REGISTRY
    figures = CollectorRegistry(auto_describe=False)
    figures.register(DatabaseFigures())
    return generate_latest(processes) + generate_latest(figures)

"""Prometheus metrics: counters each process keeps, and figures read from PostgreSQL when
``/metrics`` is scraped. The engine's (its read counter, the retry queue's gauges) are in
``sync.cache.metrics``; the operations gauges (run statistics, open alerts, the consistency
sampler's figures) are here, and ``render_metrics`` answers a scrape with both.

Several web and worker processes: with ``PROMETHEUS_MULTIPROC_DIR`` set (before any process
starts; an empty directory per deployment, emptied at start), every process writes its
counters to files there and a scrape sums them over all processes (prometheus-client's
multiprocess mode). The database figures are not process state at all: a collector reads them
at scrape time, so they appear once, whichever process answers the scrape. The event system's
figures (``sync.ops.event_stats``: the streams, and each SSE process's reader lag) are read
from Redis the same way. The database figures are reports: with read replicas they are read
from one (``sync.replicas``), and each replica's own state (answers, replay lag, paused) is a
gauge of its own.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from django.db.models import Count
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from sync.cache.metrics import gauge, queue_metrics
from sync.models import SyncAlert
from sync.ops.event_stats import event_metrics
from sync.ops.sampler import consistency_figures
from sync.ops.stats import run_statistics
from sync.replicas import replica_status, replicas, stale_reads


def ops_metrics() -> list[GaugeMetricFamily]:
    """Run statistics per source (``*``: all sources) and open alerts, from PostgreSQL."""
    duration = gauge(
        "sync_run_duration_seconds",
        "Duration of finished runs over the last 7 days",
        ["source", "stat"],
    )
    throughput = gauge(
        "sync_run_throughput_rows_per_second",
        "Mean throughput of finished runs over the last 7 days",
        ["source"],
    )
    success = gauge("sync_run_success_rate", "Succeeded / finished runs", ["source", "window"])
    alerts = gauge("sync_alerts_open", "Unacknowledged alerts", ["type", "severity"])
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
    figures = consistency_figures()
    within = gauge(
        "sync_consistency_within_ratio",
        "Share of sampled writes consistent in Redis within the window (the sampler)",
        ["window"],
    )
    nines = gauge(
        "sync_consistency_nines",
        "-log10 of the inconsistent share within the window (absent when every sample agrees)",
        ["window"],
    )
    samples = gauge(
        "sync_consistency_samples", "Samples behind the figure of the window", ["window"]
    )
    unreachable = gauge(
        "sync_consistency_unreachable_samples",
        "Samples whose last check could not read the cache Redis",
    )
    for seconds, window in figures.windows.items():
        label = f"{seconds}s"
        samples.add_metric([label], window.samples)
        if window.fraction is not None:
            within.add_metric([label], window.fraction)
            if window.fraction < 1 and window.nines is not None:  # never None with a fraction
                nines.add_metric([label], window.nines)
    unreachable.add_metric([], figures.unreachable)
    return [within, nines, samples, unreachable]


def replica_metrics() -> list[GaugeMetricFamily]:
    """Each read replica as it answers now (``DATABASE_REPLICA_URL``; none without)."""
    if not replicas():
        return []
    up = gauge("sync_db_replica_up", "1 when the read replica answers", ["replica"])
    lag = gauge(
        "sync_db_replica_lag_seconds",
        "Replay lag of the read replica (0: it replayed all it received)",
        ["replica"],
    )
    paused = gauge("sync_db_replica_replay_paused", "1 when its replay is paused", ["replica"])
    for name in replicas():
        status = replica_status(name)
        up.add_metric([name], int(status.answers))
        if status.lag_seconds is not None:
            lag.add_metric([name], status.lag_seconds)
        if status.answers:
            paused.add_metric([name], int(status.paused))
    return [up, lag, paused]


class DatabaseFigures(Collector):
    """What PostgreSQL knows (every process sees the same), read at each scrape."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with stale_reads():
            figures = [*queue_metrics(), *ops_metrics(), *consistency_metrics()]
        yield from figures
        yield from replica_metrics()


class EventFigures(Collector):
    """What the cache Redis says about the event streams and the SSE processes."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield from event_metrics()


def render_metrics() -> bytes:
    """The text exposition of a scrape: the processes' counters (summed over every process in
    multiprocess mode) and the database figures."""
    if directory := os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        _forget_dead_processes(directory)
        processes = CollectorRegistry()
        multiprocess.MultiProcessCollector(processes)
    else:
        processes = REGISTRY
    figures = CollectorRegistry(auto_describe=False)
    figures.register(DatabaseFigures())
    figures.register(EventFigures())
    return generate_latest(processes) + generate_latest(figures)


def _forget_dead_processes(directory: str) -> None:
    """Drop the live gauges of processes that have ended (``livesum``/``liveall``: connected
    SSE clients). prometheus-client keeps a dead process's file until told, so a web process
    that was restarted or killed went on counting its clients in every scrape."""
    for path in Path(directory).glob("gauge_live*_*.db"):
        pid = int(path.stem.rsplit("_", 1)[1])
        if not _alive(pid):
            multiprocess.mark_process_dead(pid, directory)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - another user's process: alive
        return True
    return True

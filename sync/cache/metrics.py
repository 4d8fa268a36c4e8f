"""The engine's Prometheus metrics: the repository's read counter (process state, summed over
every process at a scrape in multiprocess mode) and the retry queue's figures, read from
PostgreSQL when ``/metrics`` is scraped (``sync.ops.metrics.render_metrics`` collects them with
the operations gauges).
"""

from __future__ import annotations

from django.db import connections
from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily

from sync.replicas import read_alias

CACHE_READS = Counter("sync_cache_reads", "Repository reads by outcome", ["model", "outcome"])


def gauge(name: str, documentation: str, labels: list[str] | None = None) -> GaugeMetricFamily:
    """A gauge read at scrape time (no process state)."""
    return GaugeMetricFamily(name, documentation, labels=labels)


def queue_figures() -> dict[str, float]:
    """Pending and dead intents of ``sync_retry_queue`` and the age of the oldest pending one
    (one aggregate): the gauges below, the dashboard's card and the ops check's thresholds."""
    # A replica's within a block of stale-tolerant reads (sync/replicas.py): the dashboard,
    # /metrics. The ops check's thresholds and the replay command read the primary.
    with connections[read_alias()].cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FILTER (WHERE status = 'pending'),"
            " count(*) FILTER (WHERE status = 'dead'),"
            " coalesce(extract(epoch FROM now() - min(created_at)"
            "   FILTER (WHERE status = 'pending')), 0)"
            " FROM sync_retry_queue"
        )
        pending, dead, oldest = cursor.fetchone()
    return {"pending": pending, "dead": dead, "oldest_seconds": float(oldest)}


def queue_metrics() -> list[GaugeMetricFamily]:
    figures = queue_figures()
    size = gauge("sync_retry_queue_size", "Intents in sync_retry_queue", ["status"])
    size.add_metric(["pending"], figures["pending"])
    size.add_metric(["dead"], figures["dead"])
    oldest = gauge(
        "sync_retry_queue_oldest_seconds", "Age of the oldest pending intent in sync_retry_queue"
    )
    oldest.add_metric([], figures["oldest_seconds"])
    return [size, oldest]

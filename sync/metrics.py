"""Prometheus metrics of the sync engine; gauges are refreshed when ``/metrics`` is scraped."""

from __future__ import annotations

from django.db import connection
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

"""Prometheus metrics of the sync engine; gauges are refreshed when ``/metrics`` is scraped."""

from __future__ import annotations

from prometheus_client import Gauge

RETRY_QUEUE_SIZE = Gauge("sync_retry_queue_size", "Pending cache intents in sync_retry_queue")


def refresh_gauges() -> None:
    """Read the current figures from PostgreSQL into the gauges (cheap aggregate queries)."""

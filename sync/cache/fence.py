"""The outage fence (DESIGN I9): no stale reads after Redis comes back.

A Redis that was paused or partitioned comes back holding the values from before the writes
that failed to reach it. Writers that fail bump the model's epoch in PostgreSQL (``sync_fence``)
and tag their intents with it; replay, once no tagged intent of a model is left, records that
epoch as drained in Redis. Readers trust Redis for a model only while drained ≥ epoch.

Each process keeps both figures and refreshes them every ``SYNC_FENCE_REFRESH`` seconds (one
tiny query, plus one HGETALL only while some model is fenced), immediately when this process
saw a failure, and whenever the circuit breaker closes again.
"""

from __future__ import annotations

import logging
import threading
import time

from django.conf import settings
from django.db import DatabaseError, connection

from sync.cache import store
from sync.cache.connection import breaker
from sync.cache.exceptions import CacheUnavailableError

logger = logging.getLogger(__name__)


class Fence:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._epochs: dict[str, int] = {}
        self._drained: dict[str, int] = {}
        self._fetched_at = float("-inf")
        self._ok = False

    def invalidate(self) -> None:
        """Re-read both figures on the next check; the drained ones from Redis too: a Redis
        that came back (or another one: a failover, new settings) may hold other epochs."""
        with self._lock:
            self._drained = {}
            self._fetched_at = float("-inf")

    def note_failure(self, epochs: dict[str, int]) -> None:
        with self._lock:
            for label, epoch in epochs.items():
                self._epochs[label] = max(epoch, self._epochs.get(label, 0))

    def trusts(self, label: str) -> bool:
        if time.monotonic() - self._fetched_at > settings.SYNC_FENCE_REFRESH:
            self.refresh()
        return self._ok and self._epochs.get(label, 0) <= self._drained.get(label, 0)

    def refresh(self) -> None:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT model, epoch FROM sync_fence WHERE epoch > 0")
                epochs = dict(cursor.fetchall())
        except DatabaseError:
            logger.warning("fence: cannot read sync_fence; not trusting the cache")
            self._ok = False
            return
        drained = self._drained
        if any(epoch > drained.get(label, 0) for label, epoch in epochs.items()):
            try:
                drained = store.fence()
            except CacheUnavailableError:
                drained = {}
        with self._lock:
            self._epochs, self._drained = epochs, drained
            self._fetched_at = time.monotonic()
            self._ok = True


fence = Fence()
breaker.on_change(lambda state: fence.invalidate() if state == breaker.CLOSED else None)

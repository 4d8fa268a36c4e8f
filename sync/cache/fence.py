"""The outage fence (DESIGN I9): no stale reads after Redis comes back, bounded staleness always.

A Redis that was paused or partitioned comes back holding the values from before the writes
that failed to reach it. Writers that fail bump the model's epoch in PostgreSQL (``sync_fence``)
and tag their intents with it; replay, once no tagged intent of a model is left, records that
epoch as drained in Redis. Readers trust Redis for a model only while drained ≥ epoch.

The staleness bound: a change that bypassed the write-through (raw SQL, ``QuerySet.update``
without the sync-aware helper, a writer killed after COMMIT) leaves an intent by trigger and
no failure, so no epoch. The same refresh query also reads, per model, the intents older than
``SYNC_STALENESS_BOUND``: a key whose intent is that old is not trusted unless Redis already
holds its version (a write-through that completed but has not deleted its intent yet), and a
model with more than ``STALE_KEYS_MAX`` such keys is not trusted at all — whether or not any
replay runs. Replay deleting the intents opens the keys again.

Each process keeps these figures and refreshes them every ``SYNC_FENCE_REFRESH`` seconds (one
tiny query, plus one HGETALL only while some model is fenced and one HMGET pipeline only
while old intents are unconfirmed), immediately when this process saw a failure, and
whenever the circuit breaker closes again.
"""

from __future__ import annotations

import logging
import threading
import time

from django.conf import settings
from django.db import DatabaseError, connection

from sync.cache import store
from sync.cache.connection import breaker
from sync.cache.declaration import synced_models
from sync.cache.exceptions import CacheUnavailableError
from sync.cache.keys import cache_key

logger = logging.getLogger(__name__)

# Old intents looked at per model and refresh; beyond this the whole model is not trusted.
STALE_KEYS_MAX = 64

# One statement for both: the outage epochs, and per model its intents older than the bound
# (an index probe per model on sync_intent_age_idx, however long the queue is).
REFRESH_SQL = f"""
    SELECT model, epoch, NULL, NULL FROM sync_fence WHERE epoch > 0
    UNION ALL
    SELECT m.label, NULL, q.object_pk, q.version
    FROM unnest(%s::text[]) AS m(label) CROSS JOIN LATERAL (
        SELECT object_pk, version FROM sync_retry_queue
        WHERE model = m.label
          AND created_at < clock_timestamp() - make_interval(secs => %s)
        ORDER BY created_at LIMIT {STALE_KEYS_MAX + 1}
    ) q
"""  # noqa: S608 - a constant; every value is a parameter


class Fence:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._epochs: dict[str, int] = {}
        self._drained: dict[str, int] = {}
        self._stale: dict[str, frozenset[str] | None] = {}  # label -> pks; None: every key
        self._confirmed: dict[tuple[str, str], int] = {}  # (label, pk) -> version in Redis
        self._fetched_at = float("-inf")
        self._ok = False

    def invalidate(self) -> None:
        """Re-read both figures on the next check; the drained ones from Redis too: a Redis
        that came back (or another one: a failover, new settings) may hold other epochs."""
        with self._lock:
            self._drained = {}
            self._confirmed = {}
            self._fetched_at = float("-inf")

    def note_failure(self, epochs: dict[str, int]) -> None:
        with self._lock:
            for label, epoch in epochs.items():
                self._epochs[label] = max(epoch, self._epochs.get(label, 0))

    def trusts(self, label: str, pk: object = None) -> bool:
        """May a read of this model (and of this key, when ``pk`` is given) use Redis?"""
        if time.monotonic() - self._fetched_at > settings.SYNC_FENCE_REFRESH:
            self.refresh()
        if not self._ok or self._epochs.get(label, 0) > self._drained.get(label, 0):
            return False
        if label not in self._stale:
            return True
        stale = self._stale[label]
        return stale is not None and (pk is None or str(pk) not in stale)

    def stale_keys(self, label: str) -> frozenset[str] | None:
        """Keys of this model whose intents outlived the bound (None: too many to list)."""
        return self._stale.get(label, frozenset())

    def refresh(self) -> None:
        labels = [spec.label for spec in synced_models()]
        try:
            with connection.cursor() as cursor:
                cursor.execute(REFRESH_SQL, [labels, settings.SYNC_STALENESS_BOUND])
                rows = cursor.fetchall()
        except DatabaseError:
            logger.warning("fence: cannot read sync_fence; not trusting the cache")
            self._ok = False
            return
        epochs = {label: epoch for label, epoch, pk, _v in rows if pk is None}
        old: dict[str, dict[str, int]] = {}
        for label, _epoch, pk, version in rows:
            if pk is not None:
                old.setdefault(label, {})[pk] = version
        drained = self._drained
        if any(epoch > drained.get(label, 0) for label, epoch in epochs.items()):
            try:
                drained = store.fence()
            except CacheUnavailableError:
                drained = {}
        stale, confirmed = self._unconfirmed(old)
        with self._lock:
            self._epochs, self._drained = epochs, drained
            self._stale, self._confirmed = stale, confirmed
            self._fetched_at = time.monotonic()
            self._ok = True

    def _unconfirmed(
        self, old: dict[str, dict[str, int]]
    ) -> tuple[dict[str, frozenset[str] | None], dict[tuple[str, str], int]]:
        """The old intents Redis does not hold the version of, per model (None: too many).

        NOTE: a completed write-through deletes its intent lazily (``writer.settle``), and
        not at all while its process is quiet and no replay runs; such an intent is old but
        Redis has its version. One HMGET pipeline tells them apart, and each (key, version)
        confirmed is remembered, so a quiet system costs nothing after the first look.
        """
        stale: dict[str, frozenset[str] | None] = {}
        confirmed: dict[tuple[str, str], int] = {}
        unknown: list[tuple[str, str, int]] = []
        for label, intents in old.items():
            if len(intents) > STALE_KEYS_MAX:
                stale[label] = None
                continue
            for pk, version in intents.items():
                if self._confirmed.get((label, pk), -1) >= version:
                    confirmed[label, pk] = self._confirmed[label, pk]
                else:
                    unknown.append((label, pk, version))
        if unknown:
            try:
                found = store.versions([cache_key(label, pk) for label, pk, _v in unknown])
            except CacheUnavailableError:
                found = [(None, False)] * len(unknown)
            for (label, pk, version), (stored, _tombstone) in zip(unknown, found, strict=True):
                if stored is not None and stored >= version:
                    confirmed[label, pk] = stored
                else:
                    stale[label] = (stale.get(label) or frozenset()) | {pk}
        return stale, confirmed


fence = Fence()
breaker.on_change(lambda state: fence.invalidate() if state == breaker.CLOSED else None)

"""The consistency sampler: a live figure of how consistent Redis is with PostgreSQL, after
Meta's Polaris, instead of an hourly snapshot.

Every ``SYNC_SAMPLER_INTERVAL`` seconds (a beat task) ``sampler_tick``:

1. samples recent writes: up to ``SYNC_SAMPLER_RECENT`` rows per synced model whose
   ``updated_at_ns`` falls in the last tick (chosen at random), and ``SYNC_SAMPLER_RANDOM`` random
   rows over all models (a random primary key per draw: an index look-up, no table scan);
2. checks every recent write not yet found consistent (up to a minute old) and the new random
   rows against Redis with the engine's own read (``store.versions``, one pipelined round
   trip): consistent when Redis holds that version or a newer one, live as the row is;
3. raises ``consistency_slo`` when the share consistent within 10 s over the last
   ``SYNC_SAMPLER_SLO_WINDOW`` seconds is below ``SYNC_CONSISTENCY_SLO``.

``consistency_figures`` turns the samples into "consistent within 1 s / 10 s / 60 s of a write"
and nines. A write counts for a window only if it was first checked within it (a write first
seen 3 s after it happened says nothing about 1 s); random rows count for every window. A
sample that could not be checked (Redis down) is not consistent: while the cache Redis is
unreachable the figures fall, they never say 100 %.
"""

from __future__ import annotations

import logging
import math
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import connection, connections
from django.db.models import Max, Min
from django.db.models.functions import Now

from sync.cache import store
from sync.cache.declaration import SyncSpec, synced_models
from sync.cache.exceptions import CacheUnavailableError
from sync.cache.keys import cache_key
from sync.models import ConsistencySample, SyncAlert, SyncConfig
from sync.ops.alerts import raise_alert
from sync.replicas import read_alias

logger = logging.getLogger(__name__)

WINDOWS = (1, 10, 60)  # seconds after a write
RECHECK_FOR = 65  # seconds a recent write is re-checked (the longest window, and a margin)
RANDOM_DRAWS = 4  # attempts per random row (a drawn pk may fall in a gap)
Kind = ConsistencySample.Kind


@dataclass
class TickResult:
    sampled: int = 0
    checked: int = 0
    consistent: int = 0
    unreachable: bool = False
    alert: SyncAlert | None = None

    def __str__(self) -> str:
        redis = ", Redis unreachable" if self.unreachable else ""
        return (
            f"{self.sampled} sampled, {self.checked} checked, {self.consistent} consistent{redis}"
        )


@dataclass
class Window:
    seconds: int
    samples: int
    consistent: int

    @property
    def fraction(self) -> float | None:
        return self.consistent / self.samples if self.samples else None

    @property
    def nines(self) -> float | None:
        """-log10 of the inconsistent share; None without samples, inf when all agree."""
        if self.fraction is None:
            return None
        bad = 1.0 - self.fraction
        return math.inf if bad <= 0 else -math.log10(bad)


@dataclass
class Figures:
    over_seconds: float
    windows: dict[int, Window] = field(default_factory=dict)
    unreachable: int = 0  # samples whose last check could not read Redis


# --------------------------------------------------------------------------- sampling


def _database_now_ns() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT (extract(epoch FROM clock_timestamp()) * 1e9)::bigint")
        return cursor.fetchone()[0]


def _sample(spec: SyncSpec, rows, kind: str) -> list[ConsistencySample]:
    return [
        ConsistencySample(
            model=spec.label,
            object_pk=str(pk),
            version=version,
            kind=kind,
            written_at=datetime.fromtimestamp(ns / 1e9, tz=UTC),
        )
        for pk, version, ns in rows
    ]


def _recent(spec: SyncSpec, since_ns: int, limit: int) -> list[ConsistencySample]:
    rows = (
        spec.model._base_manager.filter(updated_at_ns__gte=since_ns, **spec.live_filter)
        .order_by("?")
        .values_list("pk", "version", "updated_at_ns")[:limit]
    )
    return _sample(spec, rows, Kind.RECENT)


def _random_row(spec: SyncSpec) -> list[ConsistencySample]:
    """One random live row: a random value between the lowest and highest primary key, then
    the first row at or above it (both index look-ups)."""
    manager = spec.model._base_manager
    bounds = manager.aggregate(low=Min("pk"), high=Max("pk"))
    if bounds["low"] is None or not isinstance(bounds["low"], int):
        return []  # empty, or a primary key that is not a number: no cheap random draw
    for _ in range(RANDOM_DRAWS):
        pick = random.randint(bounds["low"], bounds["high"])  # noqa: S311 - sampling
        rows = (
            manager.filter(pk__gte=pick, **spec.live_filter)
            .order_by("pk")
            .values_list("pk", "version", "updated_at_ns")[:1]
        )
        if rows:
            return _sample(spec, rows, Kind.RANDOM)
    return []


def _check(samples: list[ConsistencySample]) -> tuple[list[int], bool]:
    """The ids of the samples Redis holds at their version (or newer); False when Redis could
    not be read."""
    keys = [cache_key(s.model, s.object_pk) for s in samples]
    try:
        stored = store.versions(keys)
    except CacheUnavailableError:
        return [], False
    # A newer version is a later write or delete that landed; the sampled version itself
    # must be there as a live row (the sampler samples live rows only).
    return [
        s.pk
        for s, (cached, tombstone) in zip(samples, stored, strict=True)
        if cached is not None and (cached > s.version or (cached == s.version and not tombstone))
    ], True


def sampler_tick() -> TickResult:
    """Sample the last interval's writes and some random rows, check the open samples."""
    result = TickResult()
    specs = synced_models()
    now_ns = _database_now_ns()
    since_ns = now_ns - int(2 * settings.SYNC_SAMPLER_INTERVAL * 1e9)  # overlap: no gap
    new = [s for spec in specs for s in _recent(spec, since_ns, settings.SYNC_SAMPLER_RECENT)]
    for _ in range(settings.SYNC_SAMPLER_RANDOM if specs else 0):
        new += _random_row(random.choice(specs))  # noqa: S311 - sampling
    created = ConsistencySample.objects.bulk_create(new, ignore_conflicts=True)
    result.sampled = len(created)

    cutoff = Now() - timedelta(seconds=RECHECK_FOR)
    open_recent = ConsistencySample.objects.filter(
        kind=Kind.RECENT, consistent_at__isnull=True, written_at__gte=cutoff
    )
    fresh_random = ConsistencySample.objects.filter(kind=Kind.RANDOM, checked_at__isnull=True)
    to_check = list(open_recent) + list(fresh_random)
    result.checked = len(to_check)
    if to_check:
        ok, reachable = _check(to_check)
        result.unreachable = not reachable
        ids = [s.pk for s in to_check]
        ConsistencySample.objects.filter(pk__in=ids).update(
            checked_at=Now(), unreachable=not reachable
        )
        ConsistencySample.objects.filter(pk__in=ok).update(consistent_at=Now())
        result.consistent = len(ok)
    # NOTE: by when sampled: a random row written over SYNC_SAMPLER_RETENTION ago was deleted
    # by the very tick that drew it, and the figures lost every random sample an hour on.
    ConsistencySample.objects.filter(
        sampled_at__lt=Now() - timedelta(seconds=settings.SYNC_SAMPLER_RETENTION)
    ).delete()
    result.alert = check_slo()
    logger.debug("consistency sampler: %s", result)
    return result


# --------------------------------------------------------------------------- figures

_FIGURES = """
    SELECT {columns}, count(*) FILTER (WHERE unreachable)
    FROM sync_consistency_samples
    WHERE sampled_at >= now() - make_interval(secs => %(over)s)
"""
# A write counts for window X once X has passed since it, and only if it was first checked
# within X; a random row counts for every window, consistent if its one check found it so.
_WINDOW = """
    count(*) FILTER (WHERE written_at <= now() - make_interval(secs => {x})
        AND (kind = 'random' OR sampled_at <= written_at + make_interval(secs => {x}))),
    count(*) FILTER (WHERE written_at <= now() - make_interval(secs => {x})
        AND CASE WHEN kind = 'random' THEN consistent_at IS NOT NULL
                 ELSE sampled_at <= written_at + make_interval(secs => {x})
                      AND consistent_at <= written_at + make_interval(secs => {x}) END)
"""


def consistency_figures(*, over_seconds: float | None = None) -> Figures:
    """Consistency within each window over the samples of the last ``over_seconds``."""
    over = settings.SYNC_SAMPLER_SLO_WINDOW if over_seconds is None else over_seconds
    columns = ", ".join(_WINDOW.format(x=int(x)) for x in WINDOWS)
    # A report: a replica's within a block of stale-tolerant reads (sync/replicas.py).
    with connections[read_alias()].cursor() as cursor:
        cursor.execute(_FIGURES.format(columns=columns), {"over": over})
        row = cursor.fetchone()
    figures = Figures(over_seconds=over, unreachable=row[-1])
    for i, seconds in enumerate(WINDOWS):
        figures.windows[seconds] = Window(seconds, row[2 * i], row[2 * i + 1])
    return figures


def consistency_trend(*, minutes: int = 30, window: int = 10) -> list[dict]:
    """Per minute (oldest first): the share of the samples taken that minute consistent
    within ``window`` seconds, and how many samples it rests on."""
    # NOTE: by when a sample was taken, not when its row was written: a random row written
    # days ago is this minute's evidence (by write time every random sample of the demo fell
    # in the minute its data was loaded, and the trend stood still).
    sql = f"""
        SELECT date_trunc('minute', sampled_at) AS minute,
               {_WINDOW.format(x=int(window))}
        FROM sync_consistency_samples
        WHERE sampled_at >= date_trunc('minute', now()) - make_interval(mins => %s)
        GROUP BY 1 ORDER BY 1
    """  # noqa: S608 - window is an int we format; the rest are parameters
    with connections[read_alias()].cursor() as cursor:
        cursor.execute(sql, [minutes])
        rows = cursor.fetchall()
    return [
        {"minute": minute.isoformat(), "samples": n, "fraction": (ok / n) if n else None}
        for minute, n, ok in rows
    ]


def check_slo() -> SyncAlert | None:
    """``consistency_slo`` when the within-10 s share is below the SLO (enough samples)."""
    window = consistency_figures().windows[10]
    slo = settings.SYNC_CONSISTENCY_SLO
    if window.samples < settings.SYNC_SAMPLER_MIN_SAMPLES or window.fraction >= slo:
        return None
    message = (
        f"{window.fraction:.4%} of sampled writes were consistent in Redis within 10 s "
        f"over the last {settings.SYNC_SAMPLER_SLO_WINDOW:g} s (SLO {slo:.4%}, "
        f"{window.samples} samples)"
    )
    # NOTE: one occurrence per minute: a persisting breach is logged and counted each minute,
    # not at every tick.
    return raise_alert(
        SyncAlert.Type.CONSISTENCY_SLO,
        SyncConfig.ENGINE,
        message,
        severity=SyncAlert.Severity.CRITICAL,
        context={"fraction": window.fraction, "samples": window.samples, "slo": slo},
        occurrence=f"minute:{int(time.time() // 60)}",
    )

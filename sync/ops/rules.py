"""The alert rules, each against its threshold in ``sync_config`` (docs/operations.md).

Every rule reads database state only, so the periodic ops check, the hook after an ingest
task and a command all see the same thing; the event system's rules read what the SSE
processes reported to Redis (``sync.ops.event_stats``) and close their alert once the figure
has recovered. A rule fires when its figure reaches the
threshold (``>=``; throughput: ``<=`` ratio x median). Rules about one run carry the run as
the occurrence, so checking the same run twice does not count as a repeat.
"""

from __future__ import annotations

import statistics
import time
from datetime import timedelta

from django.conf import settings
from django.db.models import Max, Min
from django.utils import timezone

from sync.cache.exceptions import CacheUnavailableError
from sync.cache.metrics import queue_figures
from sync.models import RecordRetry, SyncAlert, SyncConfig, SyncRun
from sync.ops import event_stats
from sync.ops.alerts import raise_alert, resolve_alert

Type, Severity = SyncAlert.Type, SyncAlert.Severity
FINISHED = (SyncRun.Status.SUCCEEDED, SyncRun.Status.PARTIAL, SyncRun.Status.FAILED)
DEGRADATION_HISTORY = 10  # successful runs the median is taken over …
DEGRADATION_MINIMUM = 3  # … and how many it needs before it means anything


def _runs(source: str):
    return SyncRun.objects.filter(source=source, dry_run=False)


def _latest_finished(source: str) -> SyncRun | None:
    return (
        _runs(source)
        .filter(status__in=FINISHED, finished_at__isnull=False)
        .order_by("-finished_at", "-pk")
        .first()
    )


def check_consecutive_failures(config: SyncConfig) -> SyncAlert | None:
    recent = list(
        _runs(config.source)
        .filter(status__in=FINISHED)
        .order_by("-created_at", "-pk")
        .values_list("pk", "status")[: config.failure_threshold]
    )
    if len(recent) < config.failure_threshold or any(
        status != SyncRun.Status.FAILED for _pk, status in recent
    ):
        return None
    return raise_alert(
        Type.CONSECUTIVE_FAILURES,
        config.source,
        f"the last {len(recent)} runs failed",
        severity=Severity.CRITICAL,
        context={"run_ids": [pk for pk, _s in recent]},
        occurrence=f"run:{recent[0][0]}",
    )


def check_gaps(config: SyncConfig, run: SyncRun | None) -> SyncAlert | None:
    if run is None or run.gaps is None or run.gaps < config.gap_threshold:
        return None
    return raise_alert(
        Type.GAPS,
        config.source,
        f"{run.gaps} sheet row(s) are not in the database after run {run.pk}",
        severity=Severity.CRITICAL,
        context={
            "run_id": run.pk,
            "gaps": run.gaps,
            "keys": run.verification.get("gap_keys", [])[:50],
        },
        occurrence=f"run:{run.pk}",
    )


def check_recovery_failed(config: SyncConfig, run: SyncRun | None) -> SyncAlert | None:
    """Verification re-synced the gaps it found (auto-recovery) and some stayed missing."""
    recovery = run.verification.get("recovery") if run is not None else None
    if run is None or not recovery:
        return None
    left = recovery["attempted"] - recovery["recovered"]
    if left < config.gap_threshold:
        return None
    return raise_alert(
        Type.RECOVERY_FAILED,
        config.source,
        f"{left} of {recovery['attempted']} missing row(s) could not be re-synced in run {run.pk}",
        severity=Severity.CRITICAL,
        context={"run_id": run.pk, **recovery},
        occurrence=f"run:{run.pk}",
    )


def check_error_rate(config: SyncConfig, run: SyncRun | None) -> SyncAlert | None:
    if run is None or not run.rows_total:
        return None
    rate = run.failed / run.rows_total
    if rate < config.error_rate_threshold:
        return None
    return raise_alert(
        Type.ERROR_RATE,
        config.source,
        f"{run.failed} of {run.rows_total} rows failed in run {run.pk} ({rate:.1%})",
        context={"run_id": run.pk, "rate": rate, "errors_by_category": run.errors_by_category},
        occurrence=f"run:{run.pk}",
    )


def check_long_run(config: SyncConfig, run: SyncRun | None) -> SyncAlert | None:
    limit = timedelta(minutes=config.long_run_minutes)
    now = timezone.now()
    running = (
        _runs(config.source)
        .filter(status=SyncRun.Status.RUNNING, started_at__lte=now - limit)
        .order_by("pk")
        .first()
    )
    candidate = running or run
    if candidate is None or candidate.started_at is None:
        return None
    took = (candidate.finished_at or now) - candidate.started_at
    if took < limit:
        return None
    state = "has been running" if candidate.finished_at is None else "took"
    return raise_alert(
        Type.LONG_RUN,
        config.source,
        f"run {candidate.pk} {state} {took.total_seconds() / 60:.1f} minutes",
        context={"run_id": candidate.pk, "seconds": took.total_seconds()},
        occurrence=f"run:{candidate.pk}",
    )


def check_degradation(config: SyncConfig) -> SyncAlert | None:
    fast = list(
        _runs(config.source)
        .filter(status=SyncRun.Status.SUCCEEDED, throughput__isnull=False)
        .order_by("-finished_at", "-pk")
        .values_list("pk", "throughput")[: DEGRADATION_HISTORY + 1]
    )
    if len(fast) < DEGRADATION_MINIMUM + 1:
        return None
    (pk, latest), history = fast[0], [t for _pk, t in fast[1:]]
    median = statistics.median(history)
    if latest > config.degradation_ratio * median:
        return None
    return raise_alert(
        Type.DEGRADATION,
        config.source,
        f"run {pk}: {latest:.1f} rows/s, the median of the {len(history)} "
        f"runs before is {median:.1f}",
        context={"run_id": pk, "throughput": latest, "median": median},
        occurrence=f"run:{pk}",
    )


def check_no_success(config: SyncConfig) -> SyncAlert | None:
    runs = _runs(config.source).exclude(status=SyncRun.Status.REFUSED)
    since = (
        runs.filter(status=SyncRun.Status.SUCCEEDED).aggregate(last=Max("finished_at"))["last"]
        or runs.aggregate(first=Min("created_at"))["first"]
    )
    if since is None:
        return None  # never run: nothing to say yet
    age = timezone.now() - since
    if age < timedelta(hours=config.no_success_hours):
        return None
    return raise_alert(
        Type.NO_SUCCESS,
        config.source,
        f"no successful sync for {age.total_seconds() / 3600:.1f} hours",
        severity=Severity.CRITICAL,
        context={"since": since.isoformat()},
    )


def check_permanent_failures(config: SyncConfig) -> SyncAlert | None:
    count = RecordRetry.objects.filter(
        source=config.source, status=RecordRetry.Status.PERMANENTLY_FAILED
    ).count()
    if count < config.permanent_failure_threshold:
        return None
    return raise_alert(
        Type.PERMANENT_FAILURES,
        config.source,
        f"{count} row(s) failed permanently (retry_queue)",
        context={"count": count},
    )


def evaluate_source(config: SyncConfig) -> list[SyncAlert]:
    run = _latest_finished(config.source)
    fired = [
        check_consecutive_failures(config),
        check_gaps(config, run),
        check_recovery_failed(config, run),
        check_error_rate(config, run),
        check_long_run(config, run),
        check_degradation(config),
        check_no_success(config),
        check_permanent_failures(config),
    ]
    return [alert for alert in fired if alert is not None]


def evaluate_engine(config: SyncConfig) -> list[SyncAlert]:
    """The cache's retry queue (sync_retry_queue): size, oldest intent, dead intents."""
    figures = queue_figures()
    fired = []
    if figures["pending"] >= config.retry_queue_threshold:
        fired.append(
            raise_alert(
                Type.RETRY_QUEUE_SIZE,
                config.source,
                f"{figures['pending']} cache intents are pending",
                context=figures,
            )
        )
    if figures["oldest_seconds"] >= config.oldest_intent_seconds:
        fired.append(
            raise_alert(
                Type.RETRY_QUEUE_AGE,
                config.source,
                f"the oldest pending cache intent is {figures['oldest_seconds']:.0f} s old",
                context=figures,
            )
        )
    if figures["dead"] >= config.dead_intent_threshold:
        fired.append(
            raise_alert(
                Type.DEAD_INTENTS,
                config.source,
                f"{figures['dead']} cache intents are dead (replay gave up)",
                severity=Severity.CRITICAL,
                context=figures,
            )
        )
    return fired + evaluate_events()


def _minute() -> str:
    """One occurrence per minute: a persisting breach is counted each minute, not each tick."""
    return f"minute:{int(time.time() // 60)}"


def check_event_latency(processes: list[event_stats.ProcessFigures]) -> SyncAlert | None:
    """``event_latency``: a live SSE process's commit-to-delivery p99 over the last minute
    reached ``SYNC_EVENTS_LATENCY_ALERT_MS``; resolved when none has."""
    limit = settings.SYNC_EVENTS_LATENCY_ALERT_MS
    slow = [p for p in processes if p.p99_ms is not None and p.p99_ms >= limit]
    if not slow:
        resolve_alert(Type.EVENT_LATENCY, SyncConfig.ENGINE, f"every p99 is below {limit:g} ms")
        return None
    worst = max(slow, key=lambda p: p.p99_ms or 0)
    return raise_alert(
        Type.EVENT_LATENCY,
        SyncConfig.ENGINE,
        f"SSE process {worst.process}: commit-to-delivery p99 {worst.p99_ms:.0f} ms over the "
        f"last {event_stats.WINDOW:.0f} s ({worst.samples} events; threshold {limit:g} ms)"
        + (f", and {len(slow) - 1} other process(es)" if len(slow) > 1 else ""),
        context={
            "processes": {p.process: {"p50_ms": p.p50_ms, "p99_ms": p.p99_ms} for p in slow},
            "threshold_ms": limit,
        },
        occurrence=_minute(),
    )


def check_event_lag(processes: list[event_stats.ProcessFigures]) -> SyncAlert | None:
    """``event_lag``: the stream reader of a live SSE process (one with clients) has left an
    entry unread for ``SYNC_EVENTS_LAG_ALERT_SECONDS``; resolved when none has."""
    limit = settings.SYNC_EVENTS_LAG_ALERT_SECONDS
    behind = [
        p for p in processes if p.clients and p.lag_seconds is not None and p.lag_seconds >= limit
    ]
    if not behind:
        resolve_alert(Type.EVENT_LAG, SyncConfig.ENGINE, f"every reader is within {limit:g} s")
        return None
    worst = max(behind, key=lambda p: p.lag_seconds or 0)
    return raise_alert(
        Type.EVENT_LAG,
        SyncConfig.ENGINE,
        f"SSE process {worst.process} is {worst.lag_seconds:.0f} s behind the {worst.stream} "
        f"stream (at {worst.position}; threshold {limit:g} s)",
        context={
            "processes": {p.process: {"lag_seconds": p.lag_seconds} for p in behind},
            "threshold_seconds": limit,
        },
        occurrence=_minute(),
    )


def evaluate_events() -> list[SyncAlert]:
    """The event system's rules, on the live SSE processes' records; nothing when the cache
    Redis cannot be read (its own alerts and health checks say so)."""
    try:
        processes = event_stats.read_processes()
    except CacheUnavailableError:
        return []
    fired = [check_event_latency(processes), check_event_lag(processes)]
    return [alert for alert in fired if alert is not None]


def evaluate(config: SyncConfig) -> list[SyncAlert]:
    if config.source == SyncConfig.ENGINE:
        return evaluate_engine(config)
    return evaluate_source(config)

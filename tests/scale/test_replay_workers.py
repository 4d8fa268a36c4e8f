"""The outbox replay on several Celery worker processes: intents left by writes
during a cache outage and by a bulk update are drained by three real workers at once, over
the real broker; ``FOR UPDATE SKIP LOCKED`` means no intent is claimed twice (the replays'
own counts add up to the queue exactly) and Redis ends equal to PostgreSQL."""

from __future__ import annotations

import os
import time

import pytest
from django.db.models import F
from django.db.models.functions import Now

from catalog.models import Part
from sync.cache.maintenance import verify_models
from sync.cache.writer import settle
from sync.models import SyncIntent
from tests.engine_fixtures import fresh_engine_state, redis_raw  # noqa: F401 - fixtures
from tests.factories import make_part
from tests.scale.workers import start_workers
from tests.waiting import wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
LABEL = "catalog.part"
ROWS, OUTAGE_WRITES, WORKERS, BATCH = 3000, 20, 3, 25


def make_backlog(redis_control, rows: int) -> int:
    """``rows`` parts whose intents are all pending: most from a bulk insert and a bulk
    update (no write-through), some from saves that failed while the cache was paused (those
    carry an outage epoch, so the replays also advance the fence)."""
    parts = Part.objects.bulk_create(
        [Part(sku=f"SCALE-{n:06d}", name=f"Scale {n}", price=1) for n in range(rows)]
    )
    Part.objects.filter(sku__startswith="SCALE-").update(price=F("price") + 1)  # newer
    redis_control.pause()
    try:
        for part in parts[:OUTAGE_WRITES]:
            part.refresh_from_db()
            part.price = 99
            part.save()  # committed (I1); its write-through fails: the intent stays
    finally:
        redis_control.resume()
    SyncIntent.objects.update(next_attempt_at=Now())  # due now, not after their backoff
    return SyncIntent.objects.count()


def test_three_worker_processes_drain_the_queue_once_each(
    celery_app,
    redis_control,
    redis_raw,  # noqa: F811 - a fixture
    tmp_path,
) -> None:
    make_part()  # one row written through normally, already in Redis
    settle()  # (its completed intent is deleted by the next statement, or here)
    pending = make_backlog(redis_control, ROWS)
    assert pending == ROWS
    workers = start_workers(celery_app, WORKERS, tmp_path, SYNC_REPLAY_BATCH=str(BATCH))
    try:
        started = time.monotonic()
        for worker in workers:  # one replay task per worker: all three run at once
            celery_app.send_task("sync.tasks.replay", queue=worker.queue)
        wait_until(lambda: all(w.results() for w in workers), timeout=120, interval=0.05)
        elapsed = time.monotonic() - started
    finally:
        for worker in workers:
            worker.stop()
    results = [r for w in workers for r in w.results()]
    claimed = [r.claimed for r in results]
    print(  # noqa: T201
        f"{WORKERS} workers drained {pending} intents in {elapsed:.2f}s "
        f"({pending / elapsed:.0f}/s); claimed per worker: {claimed}"
    )
    # No double work: SKIP LOCKED gave every intent to exactly one replay.
    assert sum(claimed) == pending, claimed
    assert sum(r.written for r in results) == pending
    assert not any(r.failed for r in results)
    assert sum(1 for c in claimed if c) >= 2, claimed  # they did run side by side
    assert not SyncIntent.objects.exists()  # drained, nothing dead
    (report,) = verify_models([LABEL])  # every row in Redis at its newest version
    assert report.rows == ROWS + 1
    assert (report.missing, report.stale, report.extra) == (0, 0, 0), report.examples


@pytest.mark.skipif(
    not os.environ.get("SCALE_BENCH"),
    reason="a measurement, not a test: SCALE_BENCH=1 ./dev test tests/scale -s -k bench",
)
@pytest.mark.parametrize("workers", [1, 3])
@pytest.mark.parametrize("batch", [100, 1000])
def test_bench_drain_throughput(celery_app, redis_control, tmp_path, workers, batch) -> None:
    """Drain throughput (intents/s) of 1 vs 3 worker processes; docs/scaling.md quotes it."""
    rows = int(os.environ.get("SCALE_BENCH_ROWS", "20000"))
    pending = make_backlog(redis_control, rows)
    started_workers = start_workers(celery_app, workers, tmp_path, SYNC_REPLAY_BATCH=str(batch))
    try:
        started = time.monotonic()
        for worker in started_workers:
            celery_app.send_task("sync.tasks.replay", queue=worker.queue)
        wait_until(lambda: not SyncIntent.objects.exists(), timeout=600, interval=0.02)
        elapsed = time.monotonic() - started
    finally:
        for worker in started_workers:
            worker.stop()
    print(  # noqa: T201
        f"\nBENCH workers={workers} batch={batch}: {pending} intents in "
        f"{elapsed:.2f}s = {pending / elapsed:.0f} intents/s"
    )

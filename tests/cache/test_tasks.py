"""The Celery tasks run on a real worker over the real broker (no eager mode)."""

from __future__ import annotations

import pytest
from django.db.models.functions import Now

from catalog.models import Part
from sync import tasks
from sync.cache.maintenance import verify_models
from sync.models import SyncIntent
from tests.cache.conftest import cached_price
from tests.factories import make_part
from tests.waiting import wait_until

pytestmark = pytest.mark.django_db(transaction=True)
LABEL = "catalog.part"


def test_replay_task_on_a_worker_drains_the_queue(celery_worker, redis_raw) -> None:
    parts = [make_part(price=1) for _ in range(5)]
    Part.objects.update(price=2)  # bypasses write-through: five intents
    SyncIntent.objects.update(next_attempt_at=Now())  # due now rather than after the grace
    tasks.replay.delay()
    wait_until(lambda: not SyncIntent.objects.exists())
    assert all(cached_price(redis_raw, p.pk) == 2 for p in parts)


def test_warm_and_verify_tasks_on_a_worker(celery_worker, redis_raw) -> None:
    for _ in range(5):
        make_part()
    redis_raw.flushdb()
    tasks.warm.delay([LABEL])
    wait_until(lambda: verify_models([LABEL])[0].ok)
    tasks.verify.delay([LABEL], repair=True)


def test_metrics_show_queue_size_and_age() -> None:
    from sync.ops.metrics import render_metrics

    part = make_part()
    Part.objects.filter(pk=part.pk).update(price=9)
    text = render_metrics().decode()
    assert 'sync_retry_queue_size{status="pending"} 1.0' in text
    assert "\nsync_retry_queue_oldest_seconds " in text

"""Operations fixtures: alert mail to Django's locmem outbox, runs and intents made directly
in the real tables."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from sync.ingest.source_settings import config_for
from sync.models import SyncConfig, SyncRun


@pytest.fixture(autouse=True)
def _ops_settings(settings, tmp_path) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.SYNC_ALERT_RECIPIENTS = ["ops@example.com"]
    settings.SYNC_ARCHIVE_DIR = str(tmp_path / "archive")


@pytest.fixture
def source_config(db) -> SyncConfig:
    return config_for("probe")


def make_run(
    source: str = "probe",
    *,
    status: str = SyncRun.Status.SUCCEEDED,
    ago: timedelta = timedelta(minutes=10),
    seconds: float = 60.0,
    **values,
) -> SyncRun:
    """A finished run that started ``ago`` before now and took ``seconds``."""
    started = timezone.now() - ago
    finished = None if status == SyncRun.Status.RUNNING else started + timedelta(seconds=seconds)
    return SyncRun.objects.create(
        source=source,
        target="buyers.buyer",
        status=status,
        created_at=started,
        started_at=started,
        finished_at=finished,
        **values,
    )


def make_intents(count: int, *, status: str = "pending", age: timedelta = timedelta(0)) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO sync_retry_queue (model, object_pk, version, op, status, attempts,"
            " next_attempt_at, created_at, updated_at)"
            " SELECT 'catalog.part', 'ops-' || gen_random_uuid() , g, 'u', %s, 0, now(),"
            " now() - %s, now() FROM generate_series(1, %s) AS g",
            [status, age, count],
        )

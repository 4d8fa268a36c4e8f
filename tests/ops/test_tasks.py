"""The ops check and retention as Celery tasks on a real worker, and the check after an
ingest task."""

from __future__ import annotations

from datetime import timedelta

import pytest

from sync.models import SyncAlert, SyncHealthMetric, SyncRun
from sync.tasks import archive_logs, ops_check
from tests.ops.conftest import make_run
from tests.waiting import wait_until

pytestmark = pytest.mark.slow


def test_ops_check_and_archive_tasks_on_a_worker(celery_worker) -> None:
    make_run("buyers", gaps=2)
    old = make_run("buyers", ago=timedelta(days=100))
    ops_check.delay()
    wait_until(lambda: SyncAlert.objects.filter(alert_type="gaps", source="buyers").exists())
    archive_logs.delay()
    wait_until(lambda: not SyncRun.objects.filter(pk=old.pk).exists())


def test_an_ingest_task_is_followed_by_its_source_check(celery_worker, tmp_path, settings) -> None:
    from devtools.sheets import BUYER_HEADERS, write
    from sync.ingest.tasks import ingest

    sheet = write(tmp_path / "b.csv", BUYER_HEADERS, [])
    ingest.delay("buyers", file=str(sheet))  # the source as an argument …
    wait_until(lambda: SyncHealthMetric.objects.filter(source="buyers").exists(), 30)
    ingest.delay(source="sellers", file=str(sheet))  # … or a keyword
    wait_until(lambda: SyncHealthMetric.objects.filter(source="sellers").exists(), 30)
    assert SyncHealthMetric.objects.filter(source="buyers").count() == 1


def test_a_confirmed_upload_task_is_followed_by_its_source_check(celery_worker) -> None:
    from sync.ingest.tasks import ingest_upload

    # Cancelled while it waited: the task returns at once, and its source is still checked.
    run = make_run("buyers", status=SyncRun.Status.CANCELLED)
    ingest_upload.delay(upload_id=0, run_id=run.pk)
    wait_until(lambda: SyncHealthMetric.objects.filter(source="buyers").exists(), 30)
    ingest_upload.delay(upload_id=0, run_id=run.pk + 1000)  # no such run: nothing to check

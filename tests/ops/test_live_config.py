"""A configuration change reaches a worker process that is already running, and the beat
scheduler (django-celery-beat's DatabaseScheduler) picks the new interval up."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta

import pytest
from django_celery_beat.schedulers import DatabaseScheduler

from config.env import ROOT
from sync.ingest.source_settings import config_for
from sync.models import SyncAlert, SyncHealthMetric, SyncRun
from sync.ops.source_settings import config_update
from tests.ops.conftest import make_run
from tests.subprocesses import child_env, worker_answers
from tests.waiting import wait_until

pytestmark = pytest.mark.slow


@pytest.fixture
def worker_process(celery_app, transactional_db):
    """``celery worker`` in its own process, on a queue of its own."""
    queue = f"ops-test-{os.getpid()}"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--pool",
            "solo",
            "--queues",
            queue,
            "--hostname",
            f"{queue}@%h",
            "--without-gossip",
            "--without-mingle",
            "--loglevel",
            "WARNING",
        ],
        cwd=ROOT,
        env=child_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert wait_until(
            lambda: worker_answers(celery_app, f"{queue}@{os.uname().nodename}"),
            timeout=30,
        )
        yield proc, queue
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def _beat_interval(celery_app, name: str) -> float:
    scheduler = DatabaseScheduler(app=celery_app, lazy=True)
    return scheduler.all_as_schedule()[name].schedule.run_every.total_seconds()


def test_a_change_reaches_a_running_worker_and_the_beat_schedule(
    worker_process, celery_app
) -> None:
    proc, queue = worker_process
    config_for("probe")
    for minutes in (30, 20, 10):  # three failed runs in a row, the newest last
        make_run(status=SyncRun.Status.FAILED, ago=timedelta(minutes=minutes))
    config_update(source="probe", failure_threshold=4)
    assert _beat_interval(celery_app, "sync-ingest-probe") == 300

    celery_app.send_task("sync.tasks.ops_check", kwargs={"source": "probe"}, queue=queue)
    wait_until(lambda: SyncHealthMetric.objects.filter(source="probe").count() == 1, 30)
    assert not SyncAlert.objects.exists()  # three failures are below four

    config_update(source="probe", failure_threshold=3, interval_seconds=120)
    celery_app.send_task("sync.tasks.ops_check", kwargs={"source": "probe"}, queue=queue)
    alert = wait_until(
        lambda: SyncAlert.objects.filter(alert_type="consecutive_failures", source="probe").first(),
        30,
    )
    assert alert.count == 1
    assert proc.poll() is None  # the same process, never restarted
    assert _beat_interval(celery_app, "sync-ingest-probe") == 120

"""With every worker dead, something still alive raises ``no_worker``: a real worker process
writes heartbeats, is killed with SIGKILL, and the watchdog (in this process, as in a web
process or beat) records the alert, logs it and mails it — once per outage."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from datetime import timedelta

import pytest
from django.core import mail

from config.env import ROOT
from sync.models import ProcessHeartbeat, SyncAlert
from sync.ops.heartbeat import Heartbeat, heartbeat_beat
from sync.ops.watchdog import (
    start_web_watchdog,
    stop_web_watchdog,
    watchdog_check,
    workers_alive,
)
from tests.subprocesses import child_env
from tests.waiting import wait_until

pytestmark = pytest.mark.slow


class Worker:
    """``celery worker`` in its own process, beating every half second."""

    def __init__(self, queue: str) -> None:
        env = child_env() | {"SYNC_HEARTBEAT_INTERVAL": "0.5"}
        self.node = f"{queue}@{os.uname().nodename}"
        self.proc = subprocess.Popen(
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
                self.node,
                "--without-gossip",
                "--without-mingle",
                "--loglevel",
                "WARNING",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def heartbeat(self) -> ProcessHeartbeat | None:
        return ProcessHeartbeat.objects.filter(
            kind="worker", node=self.node, pid=self.proc.pid
        ).first()

    def end(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=20)


@pytest.fixture
def workers(transactional_db, settings):
    settings.SYNC_WORKER_STALE_AFTER = 3.0
    started: list[Worker] = []
    yield lambda: started.append(Worker(f"watchdog-{os.getpid()}")) or started[-1]
    for worker in started:
        worker.end()
    stop_web_watchdog()


def test_a_killed_worker_raises_no_worker_once_and_its_restart_is_counted(workers, caplog) -> None:
    worker = workers()
    beat = wait_until(worker.heartbeat, timeout=60, what="the worker's first heartbeat")
    assert beat.restarts == 0
    assert [w.node for w in workers_alive()] == [worker.node]
    assert watchdog_check() is None  # a worker is alive: nothing to say

    os.kill(worker.proc.pid, signal.SIGKILL)
    worker.proc.wait(timeout=10)
    with caplog.at_level(logging.ERROR, logger="sync.ops.alerts"):
        alert = wait_until(watchdog_check, timeout=60, interval=0.2, what="the no_worker alert")
    assert (alert.alert_type, alert.severity, alert.source) == ("no_worker", "critical", "engine")
    assert "nothing consumes the queues" in alert.message
    assert alert.context["workers"] == [worker.node]
    assert "ALERT no_worker [engine]" in caplog.text
    assert len(mail.outbox) == 1
    assert "no_worker" in mail.outbox[0].subject

    # The same outage checked again: one alert, one log line, one mail.
    again = watchdog_check()
    assert (again.pk, again.count, len(mail.outbox)) == (alert.pk, 1, 1)

    # Started again under the same node name (as systemd or the demo does): a restart.
    restarted = workers()
    assert restarted.node == worker.node
    beat = wait_until(restarted.heartbeat, timeout=60, what="the new worker's heartbeat")
    assert beat.restarts == 1
    assert watchdog_check() is None


def test_the_web_process_thread_raises_it_without_being_asked(transactional_db, settings) -> None:
    settings.SYNC_WORKER_STALE_AFTER = 0.5
    settings.SYNC_WATCHDOG_INTERVAL = 0.1
    # A worker that beat once and then went silent (its process died).
    heartbeat_beat(kind="worker", node="gone@host", pid=999_999)
    try:
        thread = start_web_watchdog()
        assert start_web_watchdog() is thread  # one per process
        alert = wait_until(
            lambda: SyncAlert.objects.filter(alert_type="no_worker").first(),
            timeout=30,
            what="the alert from the web process's thread",
        )
        assert alert.context["workers"] == ["gone@host"]
        web = wait_until(lambda: ProcessHeartbeat.objects.filter(kind="web").first())
        assert web.pid == os.getpid()
    finally:
        stop_web_watchdog()
    # A clean stop is recorded: its next start is not a restart.
    assert ProcessHeartbeat.objects.get(kind="web").stopped_at is not None


def test_no_heartbeat_at_all_alerts_once_the_watchdog_has_waited(
    transactional_db, settings
) -> None:
    settings.SYNC_WORKER_STALE_AFTER = 3600.0
    heartbeat_beat(kind="web", node="retired:1", pid=1)
    ProcessHeartbeat.objects.filter(node="retired:1").update(
        last_seen_at=ProcessHeartbeat.objects.get(node="retired:1").last_seen_at - timedelta(days=2)
    )
    assert watchdog_check() is None  # this process started watching only just now
    assert not ProcessHeartbeat.objects.exists()  # a process silent for a day is forgotten
    settings.SYNC_WORKER_STALE_AFTER = 0.0
    alert = watchdog_check()
    assert alert.alert_type == "no_worker"
    assert alert.context["workers"] == []


def test_a_heartbeat_that_cannot_be_written_is_logged_once_and_retried(
    transactional_db, caplog
) -> None:
    # A pid the column cannot take: every write fails, as with the database gone.
    beating = Heartbeat(kind="worker", node="broken@host", interval=0.05)
    beating.pid = "not-a-pid"
    with caplog.at_level(logging.WARNING, logger="sync.ops.heartbeat"):
        beating.start()
        wait_until(lambda: "heartbeat of worker" in caplog.text)
        beating.stop()
    assert caplog.text.count("heartbeat of worker") == 1
    assert "could not record the clean stop of worker broken@host" in caplog.text
    assert not ProcessHeartbeat.objects.exists()


def test_a_restart_counts_only_after_an_unclean_exit(transactional_db, caplog) -> None:
    from sync.ops.heartbeat import heartbeat_stop

    assert heartbeat_beat(kind="beat", node="beat@host", pid=10) is False
    assert heartbeat_beat(kind="beat", node="beat@host", pid=10) is False  # the same process
    heartbeat_stop(kind="beat", node="beat@host", pid=10)
    assert heartbeat_beat(kind="beat", node="beat@host", pid=11) is False  # after a clean stop
    with caplog.at_level(logging.WARNING, logger="sync.ops.heartbeat"):
        assert heartbeat_beat(kind="beat", node="beat@host", pid=12) is True  # 11 crashed
    assert "beat beat@host restarted after an unclean exit (restart 1)" in caplog.text
    assert ProcessHeartbeat.objects.get(node="beat@host").restarts == 1


def test_a_heartbeat_thread_beats_until_stopped(transactional_db) -> None:
    beating = Heartbeat(kind="beat", node="beat@here", interval=0.05).start()
    try:
        wait_until(lambda: ProcessHeartbeat.objects.filter(node="beat@here").exists())
    finally:
        beating.stop()
    row = ProcessHeartbeat.objects.get(node="beat@here")
    assert (row.pid, row.stopped_at is not None) == (os.getpid(), True)


def _private_broker(url: str) -> str:
    """The test broker on a database nobody consumes: what this beat sends stays there."""
    if url.startswith("redis+socket://"):
        return url.split("?", 1)[0] + "?virtual_host=13"
    base = url.split("?", 1)[0].rstrip("/")
    head, _, tail = base.rpartition("/")
    return f"{head}/13" if tail.isdigit() and "//" in head else f"{base}/13"


def test_beat_alone_raises_no_worker(transactional_db, settings, tmp_path) -> None:
    """With every worker dead and no web process, beat still says so."""
    import redis as redis_lib

    broker = _private_broker(settings.CELERY_BROKER_URL)
    env = child_env() | {
        "CELERY_BROKER_URL": broker,
        "SYNC_HEARTBEAT_INTERVAL": "0.5",
        "SYNC_WORKER_STALE_AFTER": "1",
    }
    heartbeat_beat(kind="worker", node="dead@host", pid=999_998)  # beat once, long ago
    ProcessHeartbeat.objects.filter(node="dead@host").update(
        last_seen_at=ProcessHeartbeat.objects.get(node="dead@host").last_seen_at
        - timedelta(minutes=5)
    )
    beat = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "beat",
            "--loglevel",
            "WARNING",
            "--scheduler",
            "celery.beat:PersistentScheduler",
            "--schedule",
            str(tmp_path / "beat-schedule"),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        alert = wait_until(
            lambda: SyncAlert.objects.filter(alert_type="no_worker").first(),
            timeout=60,
            interval=0.2,
            what="beat's no_worker alert",
        )
        assert alert.context["workers"] == ["dead@host"]
        assert ProcessHeartbeat.objects.filter(kind="beat").exists()
    finally:
        beat.terminate()
        beat.wait(timeout=20)
        flushed = broker.replace("redis+socket://", "unix://").replace("virtual_host=", "db=")
        redis_lib.Redis.from_url(flushed).flushdb()
    assert ProcessHeartbeat.objects.get(kind="beat").stopped_at is not None  # a clean stop


def test_a_watchdog_just_started_waits_for_workers_still_booting(
    transactional_db, settings, monkeypatch
) -> None:
    """A demo started again: the last worker heartbeat is the previous run's (40 s old) and the
    new worker is still booting. No no_worker yet; once the watchdog has waited, it alerts."""
    import time

    from sync.ops import watchdog

    settings.SYNC_WORKER_STALE_AFTER = 30.0
    heartbeat_beat(kind="worker", node="previous-run@host", pid=1)
    ProcessHeartbeat.objects.filter(node="previous-run@host").update(
        last_seen_at=ProcessHeartbeat.objects.get(node="previous-run@host").last_seen_at
        - timedelta(seconds=40)
    )
    monkeypatch.setattr(watchdog, "_watching_since", time.time())
    assert watchdog_check() is None
    monkeypatch.setattr(watchdog, "_watching_since", time.time() - 31)
    alert = watchdog_check()
    assert alert.alert_type == "no_worker"
    assert alert.context["workers"] == ["previous-run@host"]

"""Run statistics, sync_metrics, sync_health_metrics, the ops check and /metrics."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model

from sync.models import SyncHealthMetric, SyncMetric, SyncRun
from sync.ops.checks import ops_check
from sync.ops.source_settings import config_update
from sync.ops.stats import ALL, run_statistics
from tests.ops.conftest import make_intents, make_run

pytestmark = pytest.mark.django_db


def test_statistics_over_a_window_and_success_rates() -> None:
    for n, seconds in enumerate((10, 20, 30, 40, 100)):
        make_run(seconds=seconds, throughput=10.0 * (n + 1), ago=timedelta(hours=n + 1))
    make_run(status=SyncRun.Status.FAILED, seconds=5, ago=timedelta(days=3))
    make_run("other", status=SyncRun.Status.PARTIAL, seconds=50, ago=timedelta(hours=2))
    make_run(status=SyncRun.Status.FAILED, ago=timedelta(days=9))  # outside every window
    make_run(dry_run=True)
    stats = run_statistics()
    probe = stats["probe"]
    assert probe.runs == 6
    assert probe.median_seconds == pytest.approx(25)
    assert probe.mean_seconds == pytest.approx(205 / 6)
    assert probe.p95_seconds == pytest.approx(85)  # between 40 and 100
    assert probe.mean_throughput == pytest.approx(30)
    assert (probe.success_rate_24h, probe.success_rate_7d) == (1.0, 5 / 6)
    assert stats["other"].success_rate_24h == 0.0
    assert stats[ALL].runs == 7
    day = run_statistics(window=timedelta(days=1))["probe"]
    assert (day.runs, day.median_seconds) == (5, 30)
    assert run_statistics(window=timedelta(days=10))["probe"].runs == 7


def test_the_ops_check_records_runs_once_and_a_health_check_per_source(settings) -> None:
    make_run(
        "buyers",
        rows_total=10,
        rows_done=10,
        failed=1,
        gaps=0,
        verification={"sheet_count": 10, "database_count": 9},
        errors_by_category={"schema": 1},
        phase_ms={"fetch": 5},
    )
    make_run("buyers", status=SyncRun.Status.RUNNING)
    result = ops_check()
    assert result.runs_recorded == 1
    assert result.health_checks == 2  # buyers and sellers of the sources file
    metric = SyncMetric.objects.get()
    assert (metric.duration_seconds, metric.errors_by_category, metric.phase_ms) == (
        60.0,
        {"schema": 1},
        {"fetch": 5},
    )
    health = SyncHealthMetric.objects.get(source="buyers")
    assert (health.sheet_count, health.database_count, health.gaps) == (10, 9, 0)
    assert (health.error_rate, health.success_rate_24h) == (0.1, 1.0)
    assert SyncHealthMetric.objects.get(source="sellers").gaps is None
    assert {a.alert_type for a in result.alerts} == {"error_rate"}
    assert ops_check(source="buyers").runs_recorded == 0
    assert "0 run(s) recorded, 1 health check(s)" in str(ops_check(source="buyers"))


def test_metrics_endpoint_has_the_statistics_and_open_alerts(client, settings) -> None:
    settings.METRICS_TOKEN = "t0ken"
    make_run(seconds=30, throughput=12.5)
    make_run(seconds=30, gaps=2)
    make_intents(1, status="dead")
    ops_check()
    body = client.get("/metrics", HTTP_AUTHORIZATION="Bearer t0ken").content.decode()
    assert 'sync_run_duration_seconds{source="probe",stat="median"} 30.0' in body
    assert 'sync_run_duration_seconds{source="*",stat="p95"} 30.0' in body
    assert 'sync_run_throughput_rows_per_second{source="probe"} 12.5' in body
    assert 'sync_run_success_rate{source="probe",window="24h"} 1.0' in body
    assert 'sync_alerts_open{severity="critical",type="dead_intents"} 1.0' in body
    staff = get_user_model().objects.create_user("staff", is_staff=True)
    client.force_login(staff)
    assert client.get("/metrics").status_code == 200


def test_statistics_of_runs_without_throughput_or_rates() -> None:
    make_run(ago=timedelta(days=2))
    stats = run_statistics()["probe"]
    assert (stats.success_rate_24h, stats.success_rate_7d, stats.mean_throughput) == (
        None,
        1.0,
        None,
    )
    config_update(source="probe", failure_threshold=1)


def test_gauges_leave_out_what_is_not_known(client, settings) -> None:
    settings.METRICS_TOKEN = "t0ken"
    make_run(ago=timedelta(days=2))  # no throughput, nothing in the last 24 hours
    SyncRun.objects.create(source="never-started", target="buyers.buyer", status="failed")
    body = client.get("/metrics", HTTP_AUTHORIZATION="Bearer t0ken").content.decode()
    assert 'source="never-started",window="24h"} 0.0' in body
    assert 'sync_run_duration_seconds{source="never-started"' not in body
    assert 'sync_run_success_rate{source="probe",window="7d"} 1.0' in body
    assert 'source="probe",window="24h"' not in body
    assert "sync_run_throughput_rows_per_second{" not in body


def test_every_operations_row_reads_well() -> None:
    from django.utils import timezone

    from sync.models import AlertMail, SyncConfig
    from sync.ops.alerts import raise_alert

    run = make_run()
    ops_check(source="probe")
    alert = raise_alert("gaps", "probe", "x")
    mail = AlertMail.objects.create(alert_type="gaps", source="x", last_sent_at=timezone.now())
    texts = [
        str(alert),
        str(mail),
        str(SyncConfig.objects.get(source="probe")),
        str(SyncMetric.objects.get(run_id=run.pk)),
        str(SyncHealthMetric.objects.get(source="probe")),
    ]
    assert texts[0] == "gaps [probe] x1"
    assert texts[2] == "config probe v1"
    assert texts[3] == f"run {run.pk} probe 1 min 00 s"
    assert all(texts)

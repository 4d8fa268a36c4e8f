"""Each rule fires at its threshold (from sync_config) and not below."""

from __future__ import annotations

from datetime import timedelta

import pytest

from sync.ingest.source_settings import config_for
from sync.models import RecordRetry, SyncAlert, SyncConfig, SyncRun
from sync.ops.rules import evaluate
from sync.ops.source_settings import config_update
from tests.ops.conftest import make_intents, make_run

pytestmark = pytest.mark.django_db
FAILED, SUCCEEDED = SyncRun.Status.FAILED, SyncRun.Status.SUCCEEDED


def fired(source: str = "probe") -> set[str]:
    return {alert.alert_type for alert in evaluate(config_for(source))}


def test_consecutive_failures(source_config) -> None:
    config_update(source="probe", failure_threshold=3)
    make_run(status=FAILED, ago=timedelta(minutes=40))
    make_run(status=SUCCEEDED, ago=timedelta(minutes=30))
    make_run(status=FAILED, ago=timedelta(minutes=20))
    make_run(status=FAILED, ago=timedelta(minutes=10))
    assert "consecutive_failures" not in fired()  # two in a row
    make_run(status=FAILED, ago=timedelta(minutes=5))
    assert "consecutive_failures" in fired()  # three
    assert SyncAlert.objects.get(alert_type="consecutive_failures").severity == "critical"


def test_gaps(source_config) -> None:
    config_update(source="probe", gap_threshold=5)
    make_run(gaps=4, ago=timedelta(minutes=20))
    assert "gaps" not in fired()
    make_run(gaps=5, verification={"gap_keys": ["B-1"]}, ago=timedelta(minutes=10))
    assert "gaps" in fired()
    assert SyncAlert.objects.get(alert_type="gaps").context["keys"] == ["B-1"]


def test_error_rate(source_config) -> None:
    config_update(source="probe", error_rate_threshold=0.1)
    make_run(
        status=SyncRun.Status.PARTIAL,
        rows_total=100,
        rows_done=100,
        failed=9,
        ago=timedelta(minutes=20),
    )
    assert "error_rate" not in fired()
    make_run(
        status=SyncRun.Status.PARTIAL,
        rows_total=100,
        rows_done=100,
        failed=10,
        ago=timedelta(minutes=10),
    )
    assert "error_rate" in fired()


def test_error_rate_of_an_empty_run_is_nothing(source_config) -> None:
    make_run(rows_total=0)
    assert fired() == set()


def test_no_success(source_config) -> None:
    config_update(source="probe", no_success_hours=2)
    assert "no_success" not in fired()  # never run: nothing to say
    make_run(status=SUCCEEDED, ago=timedelta(hours=1, minutes=58))
    make_run(status=FAILED, ago=timedelta(minutes=5))
    assert "no_success" not in fired()
    SyncRun.objects.filter(status=SUCCEEDED).delete()
    make_run(status=SUCCEEDED, ago=timedelta(hours=2, minutes=1))
    assert "no_success" in fired()


def test_no_success_when_a_source_never_succeeded(source_config) -> None:
    config_update(source="probe", no_success_hours=1)
    make_run(status=FAILED, ago=timedelta(minutes=50))
    assert "no_success" not in fired()
    make_run(status=FAILED, ago=timedelta(minutes=61))
    assert "no_success" in fired()


def _retry(key: str, status: str) -> None:
    from django.utils import timezone

    RecordRetry.objects.create(
        source="probe",
        natural_key=key,
        category="database",
        status=status,
        next_retry_at=timezone.now(),
    )


def test_permanent_failures(source_config) -> None:
    config_update(source="probe", permanent_failure_threshold=2)
    _retry("B-1", RecordRetry.Status.PERMANENTLY_FAILED)
    _retry("B-2", RecordRetry.Status.PENDING)
    assert "permanent_failures" not in fired()
    _retry("B-3", RecordRetry.Status.PERMANENTLY_FAILED)
    assert "permanent_failures" in fired()


def test_long_run_finished(source_config) -> None:
    assert source_config.long_run_minutes == 15
    make_run(seconds=15 * 60 - 1, ago=timedelta(minutes=40))
    assert "long_run" not in fired()
    make_run(seconds=15 * 60, ago=timedelta(minutes=20))
    assert "long_run" in fired()


def test_long_run_still_running(source_config) -> None:
    make_run(status=SyncRun.Status.RUNNING, ago=timedelta(minutes=14, seconds=50))
    assert "long_run" not in fired()
    run = make_run(status=SyncRun.Status.RUNNING, ago=timedelta(minutes=15, seconds=1))
    alerts = evaluate(config_for("probe"))
    assert [a.context["run_id"] for a in alerts if a.alert_type == "long_run"] == [run.pk]
    assert "has been running" in SyncAlert.objects.get().message


def test_a_run_without_a_start_is_not_long(source_config) -> None:
    from django.utils import timezone

    SyncRun.objects.create(
        source="probe", target="buyers.buyer", status=FAILED, finished_at=timezone.now()
    )
    assert "long_run" not in fired()


def test_degradation(source_config) -> None:
    config_update(source="probe", degradation_ratio=0.5)
    for n, throughput in enumerate((90.0, 100.0, 110.0)):
        make_run(throughput=throughput, ago=timedelta(hours=5 - n))
    slow = make_run(throughput=50.1, ago=timedelta(hours=1))
    assert "degradation" not in fired()  # median 100: 50.1 is above half of it
    slow.delete()
    make_run(throughput=50.0, ago=timedelta(minutes=30))
    assert "degradation" in fired()


def test_degradation_needs_a_history(source_config) -> None:
    make_run(throughput=100.0, ago=timedelta(hours=2))
    make_run(throughput=100.0, ago=timedelta(hours=1))
    make_run(throughput=1.0, ago=timedelta(minutes=10))
    assert "degradation" not in fired()


def test_the_same_run_checked_twice_is_not_a_repeat(source_config) -> None:
    make_run(gaps=3)
    fired()
    fired()
    assert SyncAlert.objects.get(alert_type="gaps").count == 1


@pytest.fixture
def engine():
    return config_for(SyncConfig.ENGINE)


def test_retry_queue_size(engine) -> None:
    config_update(source="engine", retry_queue_threshold=5)
    make_intents(4)
    assert "retry_queue_size" not in fired("engine")
    make_intents(1)
    assert "retry_queue_size" in fired("engine")


def test_retry_queue_age(engine) -> None:
    config_update(source="engine", oldest_intent_seconds=600)
    make_intents(1, age=timedelta(seconds=590))
    assert "retry_queue_age" not in fired("engine")
    make_intents(1, age=timedelta(seconds=601))
    assert "retry_queue_age" in fired("engine")


def test_dead_intents(engine) -> None:
    config_update(source="engine", dead_intent_threshold=2)
    make_intents(1, status="dead")
    assert "dead_intents" not in fired("engine")
    make_intents(1, status="dead")
    assert "dead_intents" in fired("engine")
    assert fired("engine") == {"dead_intents"}


def test_recovery_failed(source_config) -> None:
    config_update(source="probe", gap_threshold=2)
    make_run(verification={"recovery": {"attempted": 5, "recovered": 4}}, ago=timedelta(minutes=20))
    assert "recovery_failed" not in fired()
    make_run(verification={"recovery": {"attempted": 5, "recovered": 3}}, ago=timedelta(minutes=10))
    assert "recovery_failed" in fired()
    assert SyncAlert.objects.get(alert_type="recovery_failed").context["attempted"] == 5

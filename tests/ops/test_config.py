"""sync_config: defaults, validation with field-specific messages, the beat schedule."""

from __future__ import annotations

import json

import pytest
from django.core.exceptions import ValidationError
from django_celery_beat.models import PeriodicTask

from sync.ingest.source_settings import config_ensure, config_for, recipients_for
from sync.models import SyncConfig
from sync.ops.source_settings import config_update


@pytest.mark.django_db
def test_first_use_creates_defaults_and_the_beat_entry() -> None:
    config = config_for("probe")
    assert (
        config.interval_seconds,
        config.failure_threshold,
        config.long_run_minutes,
        config.retention_days,
        config.version,
    ) == (300, 3, 15.0, 90, 1)
    entry = PeriodicTask.objects.get(name="sync-ingest-probe")
    assert entry.task == "sync.ingest.tasks.ingest"
    assert json.loads(entry.kwargs) == {"source": "probe"}
    assert entry.interval.every == 300
    assert entry.enabled
    engine = config_for(SyncConfig.ENGINE)
    assert engine.interval_seconds == 60
    assert PeriodicTask.objects.get(name="sync-ops-check").task == "sync.tasks.ops_check"


@pytest.mark.django_db
def test_ensure_configures_the_engine_and_every_source(settings, tmp_path) -> None:
    assert [c.source for c in config_ensure()] == ["engine", "buyers", "sellers"]
    settings.SYNC_INGEST_SOURCES_FILE = str(tmp_path / "missing.toml")
    assert [c.source for c in config_ensure()] == ["engine"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"interval_seconds": 59}, "interval_seconds", "greater than or equal to 60"),
        ({"error_rate_threshold": 1.5}, "error_rate_threshold", "less than or equal to 1"),
        ({"error_rate_threshold": 0}, "error_rate_threshold", "greater than or equal to"),
        ({"failure_threshold": 0}, "failure_threshold", "greater than or equal to 1"),
        ({"degradation_ratio": 1.0}, "degradation_ratio", "less than or equal to 0.99"),
        ({"batch_size": 20000}, "batch_size", "less than or equal to 10000"),
        ({"retention_days": 0}, "retention_days", "greater than or equal to 1"),
        ({"recipients": "ops@example.com, not-an-address"}, "recipients", "'not-an-address'"),
        ({"colour": "blue"}, "colour", "not a setting"),
    ],
)
def test_invalid_configuration_is_rejected_naming_the_field(changes, field, words) -> None:
    before = config_for("probe")
    with pytest.raises(ValidationError) as caught:
        config_update(source="probe", **changes)
    assert list(caught.value.message_dict) == [field]
    assert words in " ".join(caught.value.message_dict[field])
    after = SyncConfig.objects.get(source="probe")
    assert (after.version, after.interval_seconds) == (before.version, before.interval_seconds)


@pytest.mark.django_db
def test_a_change_bumps_the_version_and_moves_the_beat_schedule() -> None:
    config = config_update(
        source="probe",
        interval_seconds=900,
        enabled=False,
        recipients="a@example.com; b@example.com",
    )
    assert config.version == 2
    entry = PeriodicTask.objects.get(name="sync-ingest-probe")
    assert (entry.interval.every, entry.enabled) == (900, False)
    assert "v2" in entry.description
    assert recipients_for("probe") == ["a@example.com", "b@example.com"]


@pytest.mark.django_db
def test_recipients_default_to_the_setting(settings) -> None:
    settings.SYNC_ALERT_RECIPIENTS = ["ops@example.com"]
    assert recipients_for("probe") == ["ops@example.com"]

"""raise_alert: one open row per (type, source) with a count, redaction, the log line, and
at most one mail per (type, source) per hour, also across processes."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.utils import timezone

from sync.models import AlertMail, SyncAlert
from sync.ops.alerts import alert_acknowledge, raise_alert
from sync.ops.source_settings import config_update
from tests.subprocesses import popen_python

pytestmark = pytest.mark.django_db


def test_a_repeating_alert_bumps_its_count_instead_of_adding_rows(
    django_capture_on_commit_callbacks,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        first = raise_alert(
            "gaps", "probe", "3 rows missing", context={"run_id": 1}, occurrence="run:1"
        )
        raise_alert(
            "gaps", "probe", "3 rows missing", context={"run_id": 1}, occurrence="run:1"
        )  # the same run seen again: not a repeat
        again = raise_alert(
            "gaps", "probe", "4 rows missing", context={"run_id": 2}, occurrence="run:2"
        )
        raise_alert("gaps", "other", "1 row missing")
    assert again.pk == first.pk
    assert (again.count, again.message, again.context) == (2, "4 rows missing", {"run_id": 2})
    assert again.last_seen_at >= first.first_seen_at
    assert SyncAlert.objects.count() == 2
    assert len(mail.outbox) == 2  # one per (type, source)


def test_acknowledging_closes_it_and_the_next_firing_opens_a_new_one(
    django_capture_on_commit_callbacks,
) -> None:
    user = get_user_model().objects.create_user("operator")
    first = raise_alert("long_run", "probe", "slow")
    closed = alert_acknowledge(alert_id=first.pk, user=user)
    assert closed.acknowledged_by == user
    assert closed.acknowledged_at is not None
    second = raise_alert("long_run", "probe", "slow again")
    assert second.pk != first.pk
    assert second.count == 1


def test_message_and_context_are_redacted_and_logged(caplog) -> None:
    with caplog.at_level(logging.ERROR, logger="sync.ops.alerts"):
        alert = raise_alert(
            "error_rate",
            "probe",
            "row of jane@example.com failed",
            context={"rows": ["call +1 415 555 0100"], "n": 2},
        )
    assert "jane@example.com" not in alert.message
    assert "555" not in json.dumps(alert.context)
    assert alert.context["n"] == 2
    assert "ALERT error_rate [probe]" in caplog.text
    assert "jane@example.com" not in caplog.text


def test_mail_goes_to_the_configured_recipients_once_per_hour(
    django_capture_on_commit_callbacks,
) -> None:
    config_update(source="probe", recipients="a@example.com, b@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        for n in range(5):
            raise_alert("no_success", "probe", f"no sync for {n} hours")
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["a@example.com", "b@example.com"]
    assert "no_success on probe" in message.subject
    assert "docs/operations.md" in message.body
    assert SyncAlert.objects.get().last_emailed_at is not None
    # An hour later (the last mail moved back in time), the next firing mails again.
    AlertMail.objects.update(last_sent_at=timezone.now() - timedelta(hours=1, seconds=1))
    with django_capture_on_commit_callbacks(execute=True):
        raise_alert("no_success", "probe", "still no sync")
    assert len(mail.outbox) == 2


def test_no_recipients_no_mail(settings, django_capture_on_commit_callbacks) -> None:
    settings.SYNC_ALERT_RECIPIENTS = []
    with django_capture_on_commit_callbacks(execute=True):
        raise_alert("gaps", "probe", "1 row missing")
    assert mail.outbox == []
    assert not AlertMail.objects.exists()


def test_a_failed_mail_gives_the_slot_back(
    settings, django_capture_on_commit_callbacks, caplog
) -> None:
    settings.EMAIL_BACKEND = "tests.ops.failing_mail.EmailBackend"
    with django_capture_on_commit_callbacks(execute=True):
        raise_alert("gaps", "probe", "1 row missing")
    assert "alert mail for gaps [probe] failed" in caplog.text
    assert not AlertMail.objects.exists()
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    with django_capture_on_commit_callbacks(execute=True):
        raise_alert("gaps", "probe", "2 rows missing")
    assert len(mail.outbox) == 1


RAISER = """
    import sys, time
    from django.conf import settings
    from django.core import mail
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.SYNC_ALERT_RECIPIENTS = ["ops@example.com"]
    from sync.ops.alerts import raise_alert
    start = float(sys.argv[1]) if len(sys.argv) > 1 else {start}
    while time.time() < start:
        pass
    for n in range({n}):
        raise_alert("retry_queue_size", "engine", f"{{n}} pending")
    print(len(getattr(mail, "outbox", [])))
"""


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_hourly_limit_holds_across_two_processes() -> None:
    import time

    start = time.time() + 3  # both processes are set up by then, and start together
    procs = [popen_python(RAISER.format(start=start, n=25)) for _ in range(2)]
    outputs = [proc.communicate(timeout=60) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outputs
    assert sum(int(out.strip().splitlines()[-1]) for out, _err in outputs) == 1
    alert = SyncAlert.objects.get()
    assert alert.count == 50
    assert AlertMail.objects.count() == 1

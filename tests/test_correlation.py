"""One correlation id from the web request into the Celery task it enqueues: a manual sync
started with ``X-Request-ID`` runs on a real worker (through the real broker), and every log
line the task writes carries the request's id; a task no request enqueued gets its own."""

from __future__ import annotations

import json
import logging

import pytest
from celery import shared_task
from django.test import Client

from catalog.models import StockLevel
from sync.access import request_id, roles
from sync.models import SyncAlert, SyncIntent, SyncRun
from tests.catalog.conftest import new_part, user_with
from tests.console.conftest import client_for, role_users  # noqa: F401 - fixtures
from tests.console.sources import buyers_sheet, ensure_roles, sources_file
from tests.waiting import wait_until

pytestmark = pytest.mark.slow


class Recorder(logging.Handler):
    """Each record with the request id that was current when it was logged."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[tuple[str, str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append((record.name, record.getMessage(), request_id.current.get()))


@pytest.fixture
def recorder(settings, tmp_path):
    ensure_roles()
    settings.SYNC_INGEST_SOURCES_FILE = str(sources_file(tmp_path))
    buyers_sheet(tmp_path, 30, bad=3)
    handler = Recorder()
    logger = logging.getLogger("sync")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


def test_a_requests_id_reaches_the_task_it_enqueues(
    client_for,  # noqa: F811
    celery_worker,
    recorder,
) -> None:
    operator = client_for("operator")
    response = operator.post(
        "/api/sync/manual",
        json.dumps({"source": "buyers"}),
        content_type="application/json",
        HTTP_X_REQUEST_ID="corr-test-42",
    )
    assert response.status_code == 202
    assert response["X-Request-ID"] == "corr-test-42"
    progress = response.json()["progress_url"]
    wait_until(
        lambda: operator.get(progress).json()["run"]["finished"],
        timeout=60,
        what="the manual sync finished on the worker",
    )

    run = SyncRun.objects.get(pk=response.json()["run"]["id"])
    assert run.request_id == "corr-test-42"  # the run the request created says which
    # The run's gaps alert was raised by the task: it names the request too.
    assert SyncAlert.objects.get(alert_type="gaps").context["request_id"] == "corr-test-42"
    from_task = [
        (name, rid) for name, _msg, rid in recorder.lines if name.startswith("sync.ingest")
    ]
    assert from_task, "the ingestion task logged nothing"
    assert {rid for _name, rid in from_task} == {"corr-test-42"}


def test_a_task_no_request_enqueued_runs_under_its_own_id(
    celery_app, celery_worker, recorder
) -> None:
    token = request_id.current.set("-")  # outside any request (an earlier test made one)
    try:
        result = celery_app.send_task("sync.tasks.ops_check")
    finally:
        request_id.current.reset(token)
    wait_until(
        lambda: any(name == "sync.ops.checks" for name, *_ in recorder.lines),
        timeout=30,
        what="the ops check's log line",
    )
    (rid,) = {rid for name, _msg, rid in recorder.lines if name == "sync.ops.checks"}
    assert rid == f"task-{result.id}"


def test_json_log_lines_carry_the_id_and_stay_redacted() -> None:
    import subprocess
    import sys

    from config.env import ROOT
    from tests.subprocesses import PRELUDE, child_env

    code = PRELUDE + (
        "import logging\n"
        "from sync.access import request_id\n"
        "request_id.current.set('corr-json-7')\n"
        "logging.getLogger('sync.probe').warning('mail %s failed', 'kemal.eriksen@example.com')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env=child_env() | {"LOG_FORMAT": "json"},
        check=True,
    )
    (line,) = [json.loads(x) for x in done.stderr.splitlines() if "sync.probe" in x]
    assert (line["logger"], line["level"], line["request_id"]) == (
        "sync.probe",
        "WARNING",
        "corr-json-7",
    )
    assert "kemal.eriksen@example.com" not in line["message"]  # redact_pii, as ever (I6)
    assert line["message"].startswith("mail ")


# --------------------------------------------------------------------------- the outbox intent
# An intent is written by a PostgreSQL trigger; it records the id the writing statement carries
# (sync/cache/correlation.py), so the retry queue and sync_inspect lead to the request's logs.


@shared_task(name="tests.correlation.set_stock")
def set_stock(part_id: int, quantity: int) -> None:
    # QuerySet.update: no write-through, the intent stays for replay (none runs in the test).
    StockLevel.objects.filter(part_id=part_id).update(quantity=quantity)


@pytest.mark.django_db(transaction=True)
def test_a_staff_stock_updates_intent_carries_the_requests_id(redis_control) -> None:
    part = new_part()
    client = Client()
    client.force_login(user_with(roles.OPERATOR, "corr-operator"))
    version = StockLevel.objects.get(part=part).version
    redis_control.stop()  # the write-through fails: the intent stays, for replay
    response = client.put(
        f"/api/staff/parts/{part.pk}/stock",
        {"quantity": 3},
        content_type="application/json",
        headers={"if-match": str(version), "x-request-id": "corr-stock-9"},
    )
    assert response.status_code == 200, response.content
    intent = SyncIntent.objects.get(model="catalog.stocklevel", object_pk=str(part.pk))
    assert intent.request_id == "corr-stock-9"
    # A write outside any request or task (a shell, raw SQL) says nothing rather than a guess.
    token = request_id.current.set("-")
    try:
        other = new_part()
    finally:
        request_id.current.reset(token)
    assert SyncIntent.objects.get(model="catalog.part", object_pk=str(other.pk)).request_id == ""


def test_an_intent_written_by_a_task_carries_the_tasks_id(celery_app, celery_worker) -> None:
    part = new_part()
    SyncIntent.objects.all().delete()
    token = request_id.current.set("-")  # beat's kind of task: no request enqueued it
    try:
        result = celery_app.send_task("tests.correlation.set_stock", args=[part.pk, 11])
    finally:
        request_id.current.reset(token)
    wait_until(
        lambda: StockLevel.objects.filter(part=part, quantity=11).exists(),
        timeout=30,
        what="the task's stock update",
    )
    intent = SyncIntent.objects.get(model="catalog.stocklevel", object_pk=str(part.pk))
    assert intent.request_id == f"task-{result.id}"

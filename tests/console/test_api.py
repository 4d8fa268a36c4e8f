"""The console's JSON API (/api/sync/): statuses and shapes, roles, CSRF, a manual sync on a
real worker, the refused second start, cancel, configuration validation, alerts."""

from __future__ import annotations

import json

import psycopg
import pytest
from django.db import connection
from django.test import Client

from catalog.models import Part
from devtools import testservices
from sync.console.operations import START_LOCK_CLASS
from sync.ingest.pipeline import LOCK_CLASS, start_run
from sync.ingest.tasks import ingest
from sync.models import StaffAction, SyncAlert, SyncConfig, SyncRun
from sync.ops.alerts import raise_alert
from tests.console.sources import buyers_sheet, ensure_roles, sources_file
from tests.factories import make_part
from tests.waiting import wait_until

API = "/api/sync/"


@pytest.fixture(autouse=True)
def _sources(settings, tmp_path, db) -> None:
    ensure_roles()
    settings.SYNC_INGEST_SOURCES_FILE = str(sources_file(tmp_path))
    buyers_sheet(tmp_path, 30, bad=3)


def post(client: Client, url: str, body: object = None, **extra) -> object:
    data = body if isinstance(body, str | bytes) else json.dumps(body or {})
    return client.post(API + url, data, content_type="application/json", **extra)


def put(client: Client, body: object) -> object:
    data = body if isinstance(body, str) else json.dumps(body)
    return client.put(API + "config", data, content_type="application/json")


class HeldLock:
    """A source's ingestion lock held by another session (as a running worker holds it)."""

    def __init__(self, source: str) -> None:
        params = connection.get_connection_params()
        params.pop("cursor_factory", None)
        params.pop("context", None)
        self.conn = psycopg.connect(**params, autocommit=True)
        self.conn.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", [LOCK_CLASS, source])

    def release(self) -> None:
        # Released now: a closed connection's backend lets go of it a moment later.
        self.conn.execute("SELECT pg_advisory_unlock_all()")
        self.conn.close()


# --------------------------------------------------------------------------- access


@pytest.mark.parametrize("url", ["status", "dashboard?health=0", "config", "progress/1"])
def test_reads_need_a_session_and_the_viewer_role(client_for, url) -> None:
    anonymous = client_for("anonymous").get(API + url)
    assert anonymous.status_code == 401
    assert "log in" in anonymous.json()["error"]
    assert client_for("viewer").get(API + url).status_code in (200, 404)


def test_staff_without_a_console_role_is_refused(plain_staff) -> None:
    client = Client()
    client.force_login(plain_staff)
    response = client.get(API + "status")
    assert response.status_code == 403
    assert response.json() == {"error": "permission denied: your console role does not allow this"}


@pytest.mark.parametrize(
    ("method", "url"),
    [("post", "manual"), ("post", "cancel/1"), ("put", "config"), ("post", "alerts/1/acknowledge")],
)
def test_changes_need_the_operator_role(client_for, method, url) -> None:
    for role in ("viewer", "pii_viewer"):
        response = getattr(client_for(role), method)(
            API + url, "{}", content_type="application/json"
        )
        assert response.status_code == 403, role
    assert not StaffAction.objects.exists()


def test_a_wrong_method_is_405_with_allow(client_for) -> None:
    operator = client_for("operator")
    response = operator.get(API + "manual")
    assert response.status_code == 405
    assert response["Allow"] == "POST"
    assert "GET" in response.json()["error"]
    assert operator.delete(API + "config").json()["error"].startswith("method DELETE")
    assert operator.post(API + "status").status_code == 405


def test_csrf_is_enforced_with_a_json_error(client_for) -> None:
    operator = client_for("operator", enforce_csrf_checks=True)
    refused = post(operator, "manual", {"source": "buyers"})
    assert refused.status_code == 403
    assert refused["Content-Type"] == "application/json"
    assert "CSRF verification failed" in refused.json()["error"]
    assert not SyncRun.objects.exists()

    operator.get("/admin/")  # a page that sets the csrftoken cookie
    token = operator.cookies["csrftoken"].value
    accepted = post(operator, "manual", {"source": "buyers"}, HTTP_X_CSRFTOKEN=token)
    assert accepted.status_code == 202
    # Elsewhere the CSRF failure stays Django's page.
    page = operator.post("/admin/console/sync/buyers/start/")
    assert page.status_code == 403
    assert page["Content-Type"].startswith("text/html")


# --------------------------------------------------------------------------- manual sync


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ("{not json", 400, "malformed JSON"),
        (b"\xff\xfe", 400, "malformed JSON"),
        ("[1, 2]", 400, "must be a JSON object"),
        ({}, 400, "source is required"),
        ({"source": 7}, 400, "source is required"),
        ({"source": "nosuch"}, 404, "unknown source 'nosuch'"),
    ],
)
def test_a_bad_start_is_a_4xx_json_error(client_for, body, status, message) -> None:
    response = post(client_for("operator"), "manual", body)
    assert response.status_code == status
    assert message in response.json()["error"]
    if message == "source is required":
        assert response.json()["fields"] == {"source": ["a source name is required, e.g. buyers"]}
    assert not SyncRun.objects.exists()


def test_an_unreadable_sources_file_is_503(client_for, settings, tmp_path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[sources")
    settings.SYNC_INGEST_SOURCES_FILE = str(broken)
    response = post(client_for("operator"), "manual", {"source": "buyers"})
    assert response.status_code == 503
    assert "not valid TOML" in response.json()["error"]


@pytest.mark.slow
def test_a_manual_sync_runs_on_a_worker_and_reports_progress(
    client_for, celery_worker, role_users
) -> None:
    operator = client_for("operator")
    started = post(operator, "manual", {"source": "buyers"})
    assert started.status_code == 202
    body = started.json()
    run_id = body["run"]["id"]
    assert body["progress_url"] == f"/api/sync/progress/{run_id}"
    assert body["run"]["status"] == "pending"
    assert body["run"]["trigger"] == "api"

    viewer = client_for("viewer")

    def finished() -> dict | None:
        run = viewer.get(body["progress_url"]).json()["run"]
        return run if run["finished"] else None

    run = wait_until(finished, timeout=60)
    assert run["status"] == "partial"  # three rows have no valid date
    assert (run["created"], run["failed"], run["percent"]) == (27, 3, 100)
    assert run["rows_done"] == run["rows_total"] == 30
    assert run["gaps"] == 3
    assert run["duration_seconds"] > 0
    action = StaffAction.objects.get(action="sync.start")
    assert (action.user, action.target, action.details) == (
        role_users["operator"],
        "buyers",
        {"run_id": run_id, "trigger": "api"},
    )

    status = viewer.get(API + "status").json()
    (buyers,) = [s for s in status["sources"] if s["source"] == "buyers"]
    assert buyers["last_run"]["id"] == run_id
    assert buyers["active_run"] is None
    assert buyers["gaps"] == 3
    assert buyers["success_rate_24h"] == 0.0  # partial is not a success
    assert "trend" not in buyers
    assert set(status["queue"]) == {"pending", "dead", "oldest_seconds"}


def test_a_second_start_while_one_is_active_is_refused(client_for) -> None:
    operator = client_for("operator")
    first = post(operator, "manual", {"source": "buyers"})
    assert first.status_code == 202
    second = post(operator, "manual", {"source": "buyers"})
    assert second.status_code == 409
    assert second.json()["run"]["id"] == first.json()["run"]["id"]
    assert "already pending" in second.json()["error"]
    assert SyncRun.objects.count() == 1
    refused = StaffAction.objects.filter(action="sync.start", details__refused=True).get()
    assert refused.details["active_run"] == first.json()["run"]["id"]
    # Another source is not affected.
    assert post(operator, "manual", {"source": "sellers"}).status_code == 202


def test_a_running_run_counts_only_while_its_process_holds_the_lock(client_for) -> None:
    operator = client_for("operator")
    run = start_run("buyers")
    SyncRun.objects.filter(pk=run.pk).update(status=SyncRun.Status.RUNNING)
    held = HeldLock("buyers")
    try:
        refused = post(operator, "manual", {"source": "buyers"})
        assert refused.status_code == 409
        assert "already running" in refused.json()["error"]
    finally:
        held.release()
    # The process died (its lock is gone): the run is closed and a new one may start.
    started = post(operator, "manual", {"source": "buyers"})
    assert started.status_code == 202
    run.refresh_from_db()
    assert run.status == "failed"
    assert run.message.startswith("abandoned")


@pytest.mark.slow
def test_a_run_the_pipeline_refuses_ends_refused_with_its_message(
    client_for, celery_worker
) -> None:
    held = HeldLock("buyers")  # e.g. a command-line run of the source on another host
    try:
        started = post(client_for("operator"), "manual", {"source": "buyers"})
        run_id = started.json()["run"]["id"]
        viewer = client_for("viewer")
        run = wait_until(
            lambda: (r := viewer.get(f"{API}progress/{run_id}").json()["run"])["finished"] and r,
            timeout=30,
        )
    finally:
        held.release()
    assert run["status"] == "refused"
    assert "another sync of this source is running" in run["message"]


def test_starts_are_serialised_per_source() -> None:
    # The lock class of console starts differs from the runs' own lock class.
    assert START_LOCK_CLASS != LOCK_CLASS


# --------------------------------------------------------------------------- progress, cancel


def test_progress_of_an_unknown_run_is_404(client_for) -> None:
    response = client_for("viewer").get(API + "progress/999999")
    assert response.status_code == 404
    assert response.json()["error"] == "SyncRun matching query does not exist."


def test_cancel_a_waiting_run_at_once_and_it_never_starts(client_for, role_users) -> None:
    operator = client_for("operator")
    run_id = post(operator, "manual", {"source": "buyers"}).json()["run"]["id"]
    response = post(operator, f"cancel/{run_id}")
    assert response.status_code == 202
    run = response.json()["run"]
    assert (run["status"], run["finished"], run["cancel_requested"]) == ("cancelled", True, True)
    assert run["message"] == "cancelled before it started"
    # The queued task, when a worker takes it, leaves the run as it is.
    assert ingest("buyers", run_id=run_id) == {
        "run_id": run_id,
        "status": "cancelled",
        "message": "cancelled before it started",
    }
    action = StaffAction.objects.get(action="sync.cancel")
    assert action.details == {"run_id": run_id, "source": "buyers", "before_start": True}
    again = post(operator, f"cancel/{run_id}")
    assert again.status_code == 409
    assert again.json()["error"] == f"run {run_id} is not active (it is cancelled)"
    assert post(operator, "cancel/999999").status_code == 404


def test_cancel_a_running_run_asks_it_to_stop_after_its_batch(client_for) -> None:
    run = start_run("buyers")
    SyncRun.objects.filter(pk=run.pk).update(status=SyncRun.Status.RUNNING)
    response = post(client_for("operator"), f"cancel/{run.pk}")
    assert response.status_code == 202
    assert response.json()["run"]["status"] == "running"
    assert response.json()["run"]["cancel_requested"] is True


# --------------------------------------------------------------------------- configuration


def test_config_get_all_and_one(client_for) -> None:
    viewer = client_for("viewer")
    configs = viewer.get(API + "config").json()["configs"]
    assert "engine" in [c["source"] for c in configs]
    one = viewer.get(API + "config?source=buyers").json()["config"]
    assert one["source"] == "buyers"
    assert one["batch_size"] == 1000
    assert set(one) >= {"interval_seconds", "failure_threshold", "version", "updated_at"}
    assert viewer.get(API + "config?source=engine").status_code == 200
    missing = viewer.get(API + "config?source=nosuch")
    assert missing.status_code == 404
    assert "unknown source" in missing.json()["error"]


def test_config_put_validates_every_field(client_for) -> None:
    operator = client_for("operator")
    admin = client_for("superuser")  # recipients: only a role that sees them may change them
    bad = put(
        admin,
        {
            "source": "buyers",
            "batch_size": 0,
            "interval_seconds": 5,
            "recipients": "ops@example.com, not-an-address",
        },
    )
    assert bad.status_code == 400
    body = bad.json()
    assert body["error"] == "invalid configuration"
    assert set(body["fields"]) == {"batch_size", "interval_seconds"}
    assert "greater than or equal to 60" in body["fields"]["interval_seconds"][0]
    address = put(admin, {"source": "buyers", "recipients": "ops@example.com, nope"})
    assert address.json()["fields"] == {"recipients": ["'nope' is not an e-mail address"]}
    unknown = put(operator, {"source": "buyers", "colour": "red", "version": 9})
    assert unknown.json()["fields"] == {
        "colour": ["not a setting of sync_config"],
        "version": ["not a setting of sync_config"],
    }
    typed = put(operator, {"source": "buyers", "batch_size": "many"})
    assert list(typed.json()["fields"]) == ["batch_size"]
    assert put(operator, {"source": "buyers"}).json()["error"].startswith("nothing to change")
    assert put(operator, {"batch_size": 5}).json()["fields"] == {
        "source": ["a source name is required, e.g. buyers"]
    }
    assert put(operator, "{oops").status_code == 400
    assert put(operator, {"source": "nosuch", "batch_size": 5}).status_code == 404
    assert not StaffAction.objects.exists()


def test_config_put_stores_bumps_the_version_and_is_audited(client_for, role_users) -> None:
    operator = client_for("operator")
    before = operator.get(API + "config?source=buyers").json()["config"]["version"]
    response = put(operator, {"source": "buyers", "batch_size": 250, "auto_recovery": False})
    assert response.status_code == 200
    config = response.json()["config"]
    assert (config["batch_size"], config["auto_recovery"], config["version"]) == (
        250,
        False,
        before + 1,
    )
    assert SyncConfig.objects.get(source="buyers").batch_size == 250
    action = StaffAction.objects.get(action="config.update")
    assert (action.user, action.target, action.details) == (
        role_users["operator"],
        "buyers",
        {"fields": ["auto_recovery", "batch_size"], "version": before + 1},
    )
    assert put(operator, {"source": "engine", "retry_queue_threshold": 50}).status_code == 200
    # A fractional threshold is a number like any other (finite numbers pass the JSON check).
    assert put(operator, {"source": "buyers", "long_run_minutes": 22.5}).status_code == 200
    assert SyncConfig.objects.get(source="buyers").long_run_minutes == 22.5


def test_config_recipients_are_masked_without_the_pii_role(client_for) -> None:
    assert (
        put(
            client_for("superuser"), {"source": "buyers", "recipients": "olga.ops@example.com"}
        ).status_code
        == 200
    )
    masked = {
        role: client_for(role).get(API + "config?source=buyers").json()["config"]
        for role in ("viewer", "operator")
    }
    listed = client_for("viewer").get(API + "config").json()["configs"]
    assert {c["recipients"] for c in [*masked.values(), *listed] if c["source"] == "buyers"} == {
        "o***@e***.com"
    }
    for role in ("pii_viewer", "superuser"):
        one = client_for(role).get(API + "config?source=buyers").json()["config"]
        assert one["recipients"] == "olga.ops@example.com"


# --------------------------------------------------------------------------- dashboard, alerts


def test_dashboard_shape_and_live_queue_figures(client_for) -> None:
    viewer = client_for("viewer")
    data = viewer.get(API + "dashboard?health=0").json()
    assert set(data) == {
        "generated_at",
        "health",
        "queue",
        "consistency",
        "sources",
        "sources_error",
        "alerts",
        "open_alerts",
        "trend",
        "live_consistency",
        "processes",
    }
    assert data["health"] is None
    assert data["queue"] == {"pending": 0, "dead": 0, "oldest_seconds": 0.0}
    assert [s["source"] for s in data["sources"]] == ["buyers", "sellers"]
    assert data["trend"] == {"days": 7, "bucket_hours": 4, "buckets": 42}

    # A real write of a synced model: its intent is in the outbox until the commit's
    # write-through (which this test's transaction never reaches).
    make_part()
    make_part()
    queue = viewer.get(API + "dashboard?health=0").json()["queue"]
    assert queue["pending"] == 2
    assert queue["oldest_seconds"] >= 0
    Part.objects.all().delete()  # deletes are intents too (tombstones), coalesced per row
    assert viewer.get(API + "dashboard?health=0").json()["queue"]["pending"] == 2


@pytest.mark.slow
def test_dashboard_health_names_the_four_services(client_for, celery_worker) -> None:
    health = client_for("viewer").get(API + "dashboard").json()["health"]
    assert [(h["name"], h["ok"]) for h in health] == [
        ("PostgreSQL", True),
        ("Cache Redis", True),
        ("Cache warmth", True),
        ("Broker Redis", True),
        ("Celery worker", True),
    ]


def test_acknowledge_an_alert(client_for, role_users) -> None:
    alert = raise_alert("gaps", "buyers", "3 sheet row(s) are not in the database")
    operator = client_for("operator")
    listed = client_for("viewer").get(API + "dashboard?health=0").json()
    assert [a["id"] for a in listed["alerts"]] == [alert.pk]
    assert listed["open_alerts"] == 1
    response = post(operator, f"alerts/{alert.pk}/acknowledge")
    assert response.status_code == 200
    acked = response.json()["alert"]
    assert acked["acknowledged_by"] == "operator-user"
    assert acked["acknowledged_at"] is not None
    assert SyncAlert.objects.get(pk=alert.pk).acknowledged_by == role_users["operator"]
    assert StaffAction.objects.get(action="alert.acknowledge").details == {
        "alert_id": alert.pk,
        "type": "gaps",
        "source": "buyers",
    }
    again = post(operator, f"alerts/{alert.pk}/acknowledge")
    assert again.status_code == 409
    assert post(operator, "alerts/999999/acknowledge").status_code == 404
    assert client_for("viewer").get(API + "dashboard?health=0").json()["open_alerts"] == 0


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_an_unreachable_broker_fails_the_run_not_the_request(client_for) -> None:
    operator = client_for("operator")
    broker = testservices.services().broker
    broker.stop()
    try:
        response = post(operator, "manual", {"source": "buyers"})
        page = operator.post("/admin/console/sync/sellers/start/", follow=True)
    finally:
        broker.start()
    assert response.status_code == 503
    assert "the task queue (Celery broker) is unreachable" in response.json()["error"]
    assert response.json()["run"]["status"] == "failed"
    assert "the task queue (Celery broker) is unreachable" in page.content.decode()
    assert set(SyncRun.objects.values_list("source", "status")) == {
        ("buyers", "failed"),
        ("sellers", "failed"),
    }
    # The next start is not blocked by the run that never started.
    assert SyncRun.objects.filter(status__in=SyncRun.ACTIVE).count() == 0

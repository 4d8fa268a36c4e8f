"""The dashboard (the admin index) and the manual sync pages: what each role sees, the
figures (trend chart, rates, gaps, consistency), and the buttons' POST endpoints."""

from __future__ import annotations

import html as html_module
import re
from datetime import timedelta

import pytest
from django.contrib.messages import get_messages
from django.test import Client
from django.utils import timezone

from sync.cache.maintenance import verify_models
from sync.console.charts import trend_svg
from sync.console.dashboard import TREND_BUCKETS, cache_redis_error, dashboard_data, run_data
from sync.console.views import percent
from sync.ingest.pipeline import start_run
from sync.models import (
    CacheVerification,
    ConsistencySample,
    StaffAction,
    SyncAlert,
    SyncRun,
)
from sync.ops.alerts import raise_alert
from tests.console.sources import buyers_sheet, ensure_roles, sources_file
from tests.factories import make_part
from tests.ops.conftest import make_run
from tests.waiting import wait_until


@pytest.fixture(autouse=True)
def _sources(settings, tmp_path, db) -> None:
    ensure_roles()
    settings.SYNC_INGEST_SOURCES_FILE = str(sources_file(tmp_path))
    buyers_sheet(tmp_path, 10)


def message(response) -> str:
    """The newest message (redirects are not followed, so earlier ones are still queued)."""
    return [str(m) for m in get_messages(response.wsgi_request)][-1]


# --------------------------------------------------------------------------- the dashboard


def test_the_dashboard_is_the_admin_index_for_console_roles(client_for) -> None:
    raise_alert("gaps", "buyers", "2 sheet row(s) are not in the database")
    page = client_for("viewer").get("/admin/")
    assert page.status_code == 200
    html = page.content.decode()
    for part in (
        'id="console-dashboard"',
        'data-check="Celery worker"',
        'id="queue-pending"',
        'tr data-source="buyers"',
        'tr data-source="sellers"',
        "no runs in the last 7 days",
        "No verification yet",
        "gaps",
        "/admin/console/sync/buyers/",
        "Administration",
    ):
        assert part in html, part
    assert "Acknowledge" not in html  # a viewer reads, an operator acts
    assert "Acknowledge" in client_for("operator").get("/admin/").content.decode()


def test_staff_without_a_console_role_get_the_plain_index(plain_staff) -> None:
    client = Client()
    client.force_login(plain_staff)
    page = client.get("/admin/")
    assert page.status_code == 200
    assert "console-dashboard" not in page.content.decode()
    assert Client().get("/admin/").status_code == 302  # anonymous: to the login page


def test_rates_gaps_and_the_trend_chart(client_for) -> None:
    for days in (2, 3, 4):
        make_run(
            "buyers", ago=timedelta(days=days), rows_total=100, rows_done=100, unchanged=100, gaps=0
        )
    make_run("buyers", status=SyncRun.Status.FAILED, ago=timedelta(hours=5), seconds=4)
    make_run(
        "buyers",
        status=SyncRun.Status.PARTIAL,
        ago=timedelta(hours=1),
        rows_total=100,
        rows_done=100,
        created=96,
        failed=4,
        gaps=4,
    )
    SyncRun.objects.create(
        source="buyers",
        target="buyers.buyer",
        status="failed",
        created_at=timezone.now() - timedelta(hours=30),
        message="the sheet could not be read",
    )  # never started
    make_run("buyers", ago=timedelta(days=9))  # outside the window
    active = start_run("buyers")

    data = dashboard_data(health=False)
    (buyers, sellers) = data["sources"]
    assert buyers["active_run"]["id"] == active.pk
    assert buyers["last_run"]["status"] == "partial"  # the newest finished run
    assert buyers["gaps"] == 4  # the newest run that verified
    assert (buyers["success_rate_24h"], buyers["success_rate_7d"]) == (0.0, 0.5)
    assert buyers["runs_7d"] == 6
    assert len(buyers["trend"]) == TREND_BUCKETS
    newest, before = buyers["trend"][-1], buyers["trend"][-2]
    assert (newest["runs"], newest["failed_runs"], newest["errors"]) == (1, 0, 4)
    assert (before["runs"], before["failed_runs"], before["seconds"]) == (1, 1, 4.0)
    assert (sellers["last_run"], sellers["gaps"], sellers["trend"]) == (None, None, [])

    chart = trend_svg(buyers["trend"], hours=4)
    assert chart.count("<rect") > 6
    assert "1 failed run(s)" in chart
    assert "failed rows (max 4)" in chart
    html = client_for("viewer").get("/admin/").content.decode()
    assert "pending 0%" in html
    assert "50.0%" in html  # 7 d, in the console's one percentage format


def test_a_preview_is_not_the_last_sync(db) -> None:
    make_run("buyers", ago=timedelta(hours=2), rows_total=10, rows_done=10, created=10)
    make_run("buyers", status=SyncRun.Status.FAILED, ago=timedelta(minutes=5), dry_run=True)
    (buyers, _sellers) = dashboard_data(health=False)["sources"]
    assert (buyers["last_run"]["status"], buyers["last_run"]["dry_run"]) == ("succeeded", False)


def test_a_bucket_of_runs_that_never_started_has_no_duration() -> None:
    empty = {"runs": 0, "seconds": None, "rows": 0, "errors": 0, "failed_runs": 0}
    buckets = [empty, {"runs": 2, "seconds": None, "rows": 0, "errors": 3, "failed_runs": 2}]
    chart = trend_svg(buckets, hours=4, now=timezone.now())
    assert "2 run(s), 0 rows, duration unknown, 3 failed rows, 2 failed run(s)" in chart
    assert chart.count("<rect") == 4  # three axes and one bar


def test_the_consistency_figure_of_the_last_verification(
    client_for,
    django_capture_on_commit_callbacks,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        make_part()  # written through to Redis at commit
    make_part()  # this test's transaction never commits: Redis never sees this one
    verify_models(["catalog.part"])
    stored = CacheVerification.objects.get()
    assert str(stored).endswith(": 50.000000%")
    consistency = dashboard_data(health=False)["consistency"]
    assert (consistency["rows"], consistency["consistent"], consistency["missing"]) == (2, 1, 1)
    assert consistency["nines"] == 0.3
    assert consistency["models"] == ["catalog.part"]
    html = client_for("viewer").get("/admin/").content.decode()
    assert "50.000%" in html
    assert "1 of 2 rows consistent · 0.3 nines" in html


def _samples(*, checked_ago: timedelta, unreachable: bool = False, count: int = 20) -> None:
    """``count`` random samples, all consistent unless Redis was unreachable, last checked
    ``checked_ago``."""
    checked = timezone.now() - checked_ago
    ConsistencySample.objects.bulk_create(
        ConsistencySample(
            model="catalog.part",
            object_pk=str(i),
            version=i,
            kind="random",
            written_at=checked - timedelta(hours=1),
            sampled_at=checked,
            checked_at=checked,
            unreachable=unreachable,
            consistent_at=None if unreachable else checked,
        )
        for i in range(count)
    )


def _card(html: str) -> str:
    """The consistency card's big figure and the line under it, as a person reads them."""
    figure = re.search(r'id="live-consistency-figure"[^>]*>([^<]*)<', html).group(1)
    note = re.search(r'id="live-consistency-note"[^>]*>([^<]*)<', html).group(1)
    return html_module.unescape(f"{figure.strip()} | {note.strip()}")


def test_the_consistency_card_shows_its_figure_while_it_is_current(client_for) -> None:
    _samples(checked_ago=timedelta(seconds=1))
    live = dashboard_data(health=False)["live_consistency"]
    assert (live["freshness"], live["headline"]) == ("current", "100%")
    assert _card(client_for("viewer").get("/admin/").content.decode()) == "100% | "


def test_the_consistency_card_says_stale_when_the_sampler_stopped(client_for) -> None:
    # Every sample consistent, the newest three minutes old: no worker runs the sampler.
    _samples(checked_ago=timedelta(minutes=3))
    html = client_for("viewer").get("/admin/").content.decode()
    assert _card(html).startswith("stale | last sample 3 min 0")
    assert "is a worker running the sampler?" in _card(html)
    assert "last figure 100%" in html  # small print, not the big green figure
    live = dashboard_data(health=False)["live_consistency"]
    assert (live["freshness"], live["headline"]) == ("stale", "100%")


@pytest.mark.django_db(transaction=True)
def test_the_consistency_card_says_unknown_while_the_cache_redis_is_down(
    client_for, redis_control
) -> None:
    # The sampler's last tick found every row consistent a second ago; then Redis dies.
    _samples(checked_ago=timedelta(seconds=1))
    client = client_for("viewer")
    assert _card(client.get("/admin/").content.decode()) == "100% | "
    redis_control.kill()
    try:
        html = client.get("/admin/").content.decode()
        api = client.get("/api/sync/dashboard").json()["live_consistency"]
    finally:
        redis_control.start()
    # Back: the engine's breaker lets a PING through again after its cool-off.
    wait_until(lambda: cache_redis_error() == "", timeout=30, what="the cache Redis back")
    assert _card(html) == "unknown | cache Redis unreachable"
    assert 'class="figure unknown" id="live-consistency-figure"' in html
    assert (api["freshness"], api["freshness_note"]) == ("unknown", "cache Redis unreachable")
    # The sampler's own record says so too, once Redis is back and until its next tick.
    ConsistencySample.objects.update(unreachable=True, consistent_at=None)
    assert _card(client.get("/admin/").content.decode()) == (
        "unknown | cache Redis unreachable at the sampler's last check"
    )


def test_percent_shows_100_only_when_nothing_is_off() -> None:
    assert percent(1.0) == "100%"
    assert percent(0.9999999) == "99.999%"
    assert percent(0.5) == "50.000%"


def test_an_unreadable_sources_file_is_shown_and_runs_still_listed(
    client_for, settings, tmp_path
) -> None:
    make_run("old-source")
    broken = tmp_path / "broken.toml"
    broken.write_text("[sources")
    settings.SYNC_INGEST_SOURCES_FILE = str(broken)
    data = dashboard_data(health=False)
    assert "not valid TOML" in data["sources_error"]
    assert [s["source"] for s in data["sources"]] == ["old-source"]
    assert "not valid TOML" in client_for("viewer").get("/admin/").content.decode()


def test_run_progress_figures(db) -> None:
    run = start_run("buyers")
    assert (run_data(run)["percent"], run_data(run)["duration_seconds"]) == (0, None)
    SyncRun.objects.filter(pk=run.pk).update(status="running", rows_total=400, rows_done=100)
    run.refresh_from_db()
    assert run_data(run)["percent"] == 25
    SyncRun.objects.filter(pk=run.pk).update(status="cancelled", rows_done=300)
    run.refresh_from_db()
    assert (run_data(run)["percent"], run_data(run)["finished"]) == (75, True)


# --------------------------------------------------------------------------- the sync page


def test_the_sync_page_for_each_role(client_for) -> None:
    viewer = client_for("viewer").get("/admin/console/sync/buyers/")
    assert viewer.status_code == 200
    html = viewer.content.decode()
    assert "Sync <em>buyers</em>" in html
    assert "No runs yet." in html
    assert 'id="start-sync"' not in html
    assert "Console operator" in html
    operator = client_for("operator").get("/admin/console/sync/buyers/").content.decode()
    assert 'id="start-sync"' in operator
    assert client_for("viewer").get("/admin/console/sync/nosuch/").status_code == 404
    assert client_for("anonymous").get("/admin/console/sync/buyers/").status_code == 302


def test_the_sync_page_follows_a_run(client_for) -> None:
    older = make_run("buyers", rows_total=10, rows_done=10, created=10, gaps=0)
    active = start_run("buyers")
    client = client_for("operator")
    html = client.get("/admin/console/sync/buyers/").content.decode()
    assert f'data-run="{active.pk}"' in html
    assert 'data-finished="0"' in html
    assert "disabled" in html  # Start, while a run is active
    html = client.get(f"/admin/console/sync/buyers/?run={older.pk}").content.decode()
    assert f'data-run="{older.pk}"' in html
    assert 'data-finished="1"' in html
    html = client.get("/admin/console/sync/buyers/?run=x").content.decode()
    assert f'data-run="{active.pk}"' in html


def test_start_and_the_refused_second_start_from_the_page(client_for, role_users) -> None:
    operator = client_for("operator")
    started = operator.post("/admin/console/sync/buyers/start/")
    run = SyncRun.objects.get()
    assert started.status_code == 302
    assert started["Location"] == f"/admin/console/sync/buyers/?run={run.pk}"
    assert message(started) == (f"Run {run.pk} of buyers queued: a worker starts it shortly.")
    # Tagged with its run, so the page's script replaces it with the run's state as it
    # changes (a "queued" message must not outlive the run).
    page = operator.get(started["Location"]).content.decode()
    assert f'class="console-run-message run-{run.pk} success"' in page
    assert run.trigger == "manual"
    again = operator.post("/admin/console/sync/buyers/start/")
    assert again["Location"] == f"/admin/console/sync/buyers/?run={run.pk}"
    assert message(again) == (
        f"buyers: a sync is already pending (run {run.pk}); wait for it to finish or cancel it"
    )
    assert SyncRun.objects.count() == 1
    assert operator.get("/admin/console/sync/buyers/start/").status_code == 405
    assert operator.post("/admin/console/sync/nosuch/start/").status_code == 404
    assert client_for("viewer").post("/admin/console/sync/buyers/start/").status_code == 403
    assert StaffAction.objects.filter(user=role_users["operator"]).count() == 2


def test_cancel_from_the_page(client_for) -> None:
    operator = client_for("operator")
    run = start_run("buyers")
    url = f"/admin/console/runs/{run.pk}/cancel/"
    cancelled = operator.post(url)
    assert cancelled["Location"] == f"/admin/console/sync/buyers/?run={run.pk}"
    assert "cancel requested" in message(cancelled)
    assert f"run-{run.pk}" in [m.extra_tags for m in get_messages(cancelled.wsgi_request)][-1]
    assert SyncRun.objects.get(pk=run.pk).status == "cancelled"
    assert message(operator.post(url)) == (f"run {run.pk} is not active (it is cancelled)")
    assert operator.post("/admin/console/runs/999999/cancel/").status_code == 404
    assert client_for("viewer").post(url).status_code == 403


def test_acknowledge_from_the_dashboard(client_for) -> None:
    alert = raise_alert("gaps", "buyers", "2 sheet row(s) are not in the database")
    operator = client_for("operator")
    url = f"/admin/console/alerts/{alert.pk}/acknowledge/"
    assert client_for("viewer").post(url).status_code == 403
    done = operator.post(url, {"next": "/admin/?from=dashboard"})
    assert done["Location"] == "/admin/?from=dashboard"
    assert message(done) == ("Alert gaps on buyers acknowledged.")
    assert SyncAlert.objects.get(pk=alert.pk).acknowledged_at is not None
    again = operator.post(url, {"next": "https://elsewhere.example/"})
    assert again["Location"] == "/admin/"
    assert message(again) == (f"alert {alert.pk} was acknowledged already")
    assert operator.post("/admin/console/alerts/999999/acknowledge/").status_code == 404

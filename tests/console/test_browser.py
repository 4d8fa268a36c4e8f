"""The console in a real browser: headless Chromium (Debian's ``chromium``, driven by
Playwright) against Django's live server, with a real Celery worker process.

Log in as an operator, open the dashboard (the service checks turn green), start a manual
sync of the demo buyers sheet and watch its progress bar reach 100% and the summary appear,
acknowledge the alert the run raised, then start a long run and cancel it. Screenshots of the
dashboard and the sync page go to ``artifacts/`` (git-ignored).

The browser comes from apt: ``./dev test`` installs it when it is missing and it can. Without
it these tests skip, except in CI (``CI=true``), where a missing browser fails the run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connections
from django.utils import timezone

from config.env import ROOT
from sync.cache.maintenance import verify_models
from sync.models import SyncAlert, SyncRun
from sync.ops.source_settings import config_update
from tests.console.conftest import PASSWORD, make_staff_user
from tests.console.sources import buyers_sheet, ensure_roles, sources_file
from tests.subprocesses import child_env, worker_answers
from tests.waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ARTIFACTS = ROOT / "artifacts"
DEMO_ROWS, BAD_ROWS = 4140, 5  # the demo's buyers sheet, five rows with a date that is not one
WAIT = 60_000  # milliseconds the browser waits for a condition


@pytest.fixture
def sheets(settings, tmp_path) -> Path:
    settings.SYNC_INGEST_SOURCES_FILE = str(sources_file(tmp_path))
    buyers_sheet(tmp_path, DEMO_ROWS, bad=BAD_ROWS)
    return tmp_path


@pytest.fixture
def worker(celery_app, sheets, settings) -> Iterator[subprocess.Popen]:
    """``celery worker`` in its own process on the default queue, reading this test's
    sources file."""
    name = f"console-browser-{os.getpid()}"
    env = {**child_env(), "SYNC_INGEST_SOURCES_FILE": settings.SYNC_INGEST_SOURCES_FILE}
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
            "--hostname",
            f"{name}@%h",
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
    try:
        assert wait_until(
            lambda: worker_answers(celery_app, f"{name}@{os.uname().nodename}"),
            timeout=60,
        )
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _history() -> None:
    """A week of earlier runs, so the trend charts have something to show."""
    now = timezone.now()
    for hours in range(3, 7 * 24, 9):
        for source, rows, seconds in (("buyers", DEMO_ROWS, 3.0), ("sellers", 300, 1.0)):
            started = now - timedelta(hours=hours)
            failed = 0 if hours % 4 else (hours % 7) * 3
            status = "partial" if failed else ("failed" if hours % 31 == 0 else "succeeded")
            SyncRun.objects.create(
                source=source,
                target="buyers.buyer",
                trigger="schedule",
                status=status,
                created_at=started,
                started_at=started,
                finished_at=started + timedelta(seconds=seconds * (1 + hours % 5 / 4)),
                rows_total=rows,
                rows_done=rows,
                unchanged=rows - failed,
                failed=failed,
                gaps=failed,
            )


def _shot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    return path


def test_dashboard_manual_sync_acknowledge_and_cancel(browser, worker, live_server, sheets) -> None:
    try:
        _console_flow(browser, live_server, sheets)
    finally:
        # NOTE: with Playwright's greenlets running, this test's ORM calls get connections
        # of their own context, which pytest-django's teardown would not close.
        connections.close_all()


def _console_flow(browser, live_server, sheets: Path) -> None:
    ensure_roles()
    make_staff_user("operator")
    _history()
    page = browser.new_page(viewport={"width": 1440, "height": 1000})
    page.set_default_timeout(WAIT)

    # Log in and land on the dashboard; its first poll brings the service checks.
    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.fill("#id_username", "operator-user")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#console-dashboard")
    for name in ("PostgreSQL", "Cache Redis", "Broker Redis", "Celery worker"):
        page.wait_for_selector(f'[data-check="{name}"] .dot-ok')
    assert page.text_content("#queue-pending").strip().isdigit()
    assert page.locator('tr[data-source="buyers"] svg.trend rect').count() > 10

    # A manual sync of the demo buyers sheet: the bar reaches 100%, the summary appears.
    page.click('tr[data-source="buyers"] a.button')
    page.wait_for_selector("#console-sync")
    page.click("#start-sync")
    page.wait_for_selector("#run-progress")
    assert "Run " in page.text_content(".messagelist")  # queued, or already its state
    page.wait_for_selector('#run-progress[aria-valuenow="100"]')
    page.wait_for_selector("#run-summary", state="visible")
    page.wait_for_selector(".messagelist li.console-run-message.warning")
    assert ": partial" in page.text_content(".messagelist")  # no longer "queued"
    assert page.text_content("#run-status") == "partial"
    assert page.text_content("#sum-created") == f"{DEMO_ROWS - BAD_ROWS:,}"
    assert page.text_content("#sum-failed") == str(BAD_ROWS)
    assert page.text_content("#sum-gaps") == str(BAD_ROWS)
    assert page.is_hidden("#cancel-form")
    assert page.is_enabled("#start-sync")
    assert page.text_content('#run-row [data-col="status"]') == "partial"
    _shot(page, "console-sync.png")
    run = SyncRun.objects.filter(trigger="manual").get()
    assert (run.status, run.created, run.failed) == ("partial", DEMO_ROWS - BAD_ROWS, BAD_ROWS)

    # The run's verification raised a gaps alert: acknowledge it from the dashboard (which
    # shows the consistency figure of the cache verification run meanwhile).
    (report,) = [r for r in verify_models() if r.label == "buyers.buyer"]
    assert report.ok
    page.goto(f"{live_server.url}/admin/")
    assert "last full verification: 100%" in page.text_content("#consistency-text")
    alert = SyncAlert.objects.get(alert_type="gaps", source="buyers")
    row = f'#alerts tr[data-alert="{alert.pk}"]'
    page.wait_for_selector(row)
    page.wait_for_selector('[data-check="Celery worker"] .dot-ok')
    _shot(page, "console-dashboard.png")
    page.click(f"{row} button.ack")
    page.wait_for_selector(".messagelist .success")
    assert "acknowledged" in page.text_content(".messagelist")
    assert page.locator(row).count() == 0
    alert.refresh_from_db()
    assert alert.acknowledged_by.username == "operator-user"

    # A long run (a big sheet in small batches), cancelled from its page while it works.
    buyers_sheet(sheets, 60_000)
    config_update(source="buyers", batch_size=50)
    page.goto(f"{live_server.url}/admin/console/sync/buyers/")
    page.click("#start-sync")
    # NOTE: a selector, not wait_for_function: Playwright polls a function with eval, which
    # the Content-Security-Policy refuses (no 'unsafe-eval').
    page.wait_for_selector('#run-progress:not([aria-valuenow="0"])')
    assert page.text_content("#run-status") == "running"
    page.click("#cancel-run")
    page.wait_for_selector("#run-status.status-cancelled")
    page.wait_for_selector("#run-summary", state="visible")
    cancelled = SyncRun.objects.filter(trigger="manual").order_by("-pk").first()
    assert cancelled.status == "cancelled"
    assert 0 < cancelled.rows_done < cancelled.rows_total
    page.close()

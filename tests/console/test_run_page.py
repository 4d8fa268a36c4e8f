"""A run's page and the runs list as an operations person reads them: phase
timings as a bar and a table in the pipeline's order (the pre-scan included), one duration
and one number format, the status and a cancel request side by side, no raw JSON; the runs
list fits 1280 px; the sync page's "queued" message follows its run to the end.

The browser test (headless Chromium against the live server) takes screenshots of the run
page, the runs list and the sync page at 1280 x 800 into ``artifacts/run-page/``.
"""

from __future__ import annotations

import html
import re
from datetime import timedelta

import pytest
from django.db import connections
from django.urls import reverse
from django.utils import timezone

from config.env import ROOT
from sync.console.admin.run_page import PHASES
from sync.ingest.pipeline import run_ingest
from sync.models import ErrorLog, SyncRun
from tests.console.conftest import PASSWORD, make_staff_user
from tests.console.sources import buyers_sheet, ensure_roles, sources_file

ARTIFACTS = ROOT / "artifacts" / "run-page"
PHASE_MS = {
    "verify": 68.2,
    "update": 1045.1,
    "write_through": 4.2,
    "scan": 70.4,
    "validate": 54.0,
    "schema": 16.3,
    "fetch": 27.1,
}


def text_of(page: str) -> str:
    """The page's words, as a person reads them."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def make_run(**values) -> SyncRun:
    started = timezone.now() - timedelta(minutes=5)
    fields = {
        "source": "buyers",
        "target": "buyers.buyer",
        "status": "partial",
        "trigger": "api",
        "created_at": started,
        "started_at": started,
        "finished_at": started + timedelta(seconds=1.2995),
        "rows_total": 4140,
        "rows_done": 4140,
        "created": 4135,
        "failed": 5,
        "gaps": 5,
        "throughput": 9109.058663715743,
        "phase_ms": PHASE_MS,
        "errors_by_category": {"validation": 5},
        "verification": {
            "sheet_count": 4140,
            "database_count": 4135,
            "gaps": 5,
            "duplicates": {"B-00201": [202, 1352]},
            "left_sheet": {"count": 2, "action": "flagged", "keys": ["B-00601", "B-00701"]},
        },
        "schema_report": {"rows": [{"row": 1350, "column": "Email", "length": 61, "limit": 50}]},
        "message": "4140 rows: 4135 created, 0 updated, 0 unchanged, 5 failed",
        **values,
    }
    return SyncRun.objects.create(**fields)


@pytest.mark.django_db
def test_the_run_page_reads_at_a_glance(client_for) -> None:
    run = make_run(cancel_requested=True)
    ErrorLog.objects.create(
        run_id=run.pk,
        source="buyers",
        category="validation",
        code="not_a_date",
        row_number=1350,
        natural_key="B-01350",
        column="Inquiry Date",
        value_length=10,
        reason="Inquiry Date is not a date (YYYY-MM-DD)",
    )
    page = client_for("viewer").get(reverse("admin:sync_syncrun_change", args=[run.pk]))
    assert page.status_code == 200
    source = page.content.decode()
    text = text_of(source)
    assert '{"' not in text and "[{" not in text  # no raw JSON anywhere

    # Phase timings: one bar, a segment per phase, in the pipeline's order (scan included).
    bar = re.search(r'<svg class="phase-bar".*?</svg>', source).group(0)
    segments = re.findall(r'class="phase-(\w+)"><title>([^<]+)</title>', bar)
    assert [name for name, _title in segments] == list(PHASES)
    assert PHASES.index("scan") == PHASES.index("schema") + 1
    assert ("update", "update: 1.0 s (81.3%)") in segments
    rows = re.findall(
        r'</i>([\w ]+)</th><td class="num">([^<]+)</td><td class="num">'
        r"([^<]+)</td>",
        source,
    )
    assert rows[:3] == [
        ("fetch", "27 ms", "2.1%"),
        ("schema", "16 ms", "1.2%"),
        ("scan", "70 ms", "5.4%"),
    ]
    assert "total 1.3 s 100%" in text

    # One duration, one number, one time format; the throughput rounded with its unit.
    assert "Duration: 1.3 s" in text and "9,109 rows/s" in text
    assert "9109.0" not in text and "1.2995" not in text
    assert re.search(r"Started at: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d ", text)
    assert "a.m." not in text and "p.m." not in text
    assert "Message: 4,140 rows: 4,135 created" in text
    assert "CREATED 4,135" in text.upper()

    # The status pill and the cancel request in one field, not two labels floating apart.
    state = re.search(
        r'<div class="form-row field-state">.*?</div>\s*</div>', source, re.DOTALL
    ).group(0)
    assert "Partial" in state and "cancel was requested" in state
    assert "field-cancel_requested" not in source
    assert 'class="module aligned run-grid"' in source

    # Errors: row numbers are positions (bare, as the sheet writes them); a bad date has no
    # "length / limit"; the verification's row numbers read the same way.
    assert "1350 B-01350 Validation Inquiry Date Inquiry Date is not a date" in text
    assert "length / limit" not in text
    assert "B-00201 rows 202, 1352" in text
    assert "keys in the sheet 4,140 of them in the database 4,135" in text
    assert "Left the sheet: 2 rows: B-00601, B-00701 (flagged)" in text


@pytest.mark.django_db
def test_a_schema_report_without_limited_columns_shows_no_empty_measurements(client_for) -> None:
    run = make_run(
        schema_report={
            "limited_columns": {},
            "missing_headers": [],
            "unmapped_headers": ["Remarks"],
            "rows_scanned": 0,
            "rows_with_misfits": 0,
            "misfits": 0,
            "by_column": {},
            "rows": [],
            "file": {"encoding": "utf-8-sig", "detected": ["encoding"]},
        }
    )
    text = text_of(
        client_for("viewer")
        .get(reverse("admin:sync_syncrun_change", args=[run.pk]))
        .content.decode()
    )
    assert "length-limited columns none" in text and "unmapped headers Remarks" in text
    assert "detected (not declared) encoding" in text
    assert "rows measured" not in text and "values too long" not in text


@pytest.mark.django_db
def test_the_runs_list_in_one_line_per_run(client_for) -> None:
    make_run()
    make_run(
        status="running",
        finished_at=None,
        rows_done=2000,
        created=2000,
        failed=0,
        gaps=None,
        phase_ms={},
    )
    make_run(status="succeeded", dry_run=True, created=0, unchanged=4140, failed=0, gaps=0)
    page = client_for("viewer").get(reverse("admin:sync_syncrun_changelist"))
    text = text_of(page.content.decode())
    assert "4,140 4,135 new · 5 failed · 5 gaps" in text
    assert "2,000 of 4,140 2,000 new" in text
    assert "dry run · 4,140 unchanged" in text
    assert "4,140 / 4,140" not in text  # the old three-line cell
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d 1\.3 s", text)
    filters = re.search(r"By trigger(.*?)By dry run", text).group(1)
    assert "API" in filters and "Api" not in filters


# --------------------------------------------------------------------------- in a browser


def _log_in(page, live_server) -> None:
    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.fill("#id_username", "operator-user")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#console-dashboard")


CLIPPED = """() => Array.from(document.querySelectorAll('#content-main, .results, table'))
    .filter((e) => e.scrollWidth > e.clientWidth + 1 || e.getBoundingClientRect().right > 1280)
    .map((e) => (e.id || e.className) + ' ' + e.scrollWidth + '>' + e.clientWidth)"""


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_in_a_browser_at_1280(browser, live_server, settings, tmp_path) -> None:
    settings.SYNC_INGEST_SOURCES_FILE = str(sources_file(tmp_path))
    buyers_sheet(tmp_path, 4140, bad=5)
    ensure_roles()
    make_staff_user("operator")
    for hours in range(1, 40):  # a page of runs
        make_run(
            created_at=timezone.now() - timedelta(hours=hours),
            trigger="schedule",
            status="succeeded" if hours % 5 else "partial",
        )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.set_default_timeout(30_000)
        _log_in(page, live_server)

        # Start a sync from its page: the message says it is queued...
        page.goto(f"{live_server.url}/admin/console/sync/buyers/")
        page.click("#start-sync")
        message = page.locator(".messagelist li.console-run-message")
        assert "queued" in message.text_content()
        run = SyncRun.objects.filter(trigger="manual").get()
        # ... and once the run has ended (run here, in the test's own process), it says how.
        run_ingest("buyers", run=run)
        page.wait_for_selector(".messagelist li.console-run-message.warning")
        said = message.text_content()
        assert said.startswith(f"Run {run.pk} of buyers: partial, 4,135 new · 5 failed, in ")
        assert "queued" not in said
        assert message.locator("a").get_attribute("href") == reverse(
            "admin:sync_syncrun_change", args=[run.pk]
        )
        assert page.text_content("#sum-message").startswith("4,140 rows: 4,135 created")
        page.screenshot(path=str(ARTIFACTS / "sync-1280.png"), full_page=True)

        for name, url in (
            ("runs", reverse("admin:sync_syncrun_changelist")),
            ("run", reverse("admin:sync_syncrun_change", args=[run.pk])),
            ("errors", reverse("admin:sync_errorlog_changelist")),
        ):
            page.goto(live_server.url + url)
            page.screenshot(path=str(ARTIFACTS / f"{name}-1280.png"), full_page=True)
            # NOTE: a selector-free evaluate: the Content-Security-Policy forbids eval.
            assert page.evaluate(CLIPPED) == [], name
            if name == "run":
                assert page.locator("svg.phase-bar rect").count() == len(PHASES)
        page.close()
    finally:
        connections.close_all()


@pytest.mark.django_db
def test_a_running_run_says_its_phase_and_a_too_long_value_its_length_only(client_for) -> None:
    """While a run runs its page says what it is doing beside the status; the errors table
    gets a length / limit column once a value is too long, and a bad date's cell there is
    empty (its length says nothing)."""
    run = make_run(status="running", phase="update", finished_at=None, cancel_requested=True)
    for row, column, length, limit, reason in (
        (17, "Email", 61, 50, "Email is longer than its column (61 > 50)"),
        (18, "Inquiry Date", 10, None, "Inquiry Date is not a date (YYYY-MM-DD)"),
    ):
        ErrorLog.objects.create(
            run_id=run.pk,
            source="buyers",
            category="validation",
            row_number=row,
            natural_key=f"B-000{row}",
            column=column,
            value_length=length,
            column_limit=limit,
            reason=reason,
        )
    source = (
        client_for("viewer")
        .get(reverse("admin:sync_syncrun_change", args=[run.pk]))
        .content.decode()
    )
    state = text_of(
        re.search(r'<div class="form-row field-state">.*?</div>\s*</div>', source, re.DOTALL).group(
            0
        )
    )
    assert "Running" in state and "phase update" in state and "cancel requested" in state
    errors = text_of(
        re.search(r'<table class="run-facts run-errors">.*?</table>', source, re.DOTALL).group(0)
    )
    assert "column length / limit reason" in errors
    assert "17 B-00017 Validation Email 61 / 50 Email is longer" in errors
    assert "18 B-00018 Validation Inquiry Date - Inquiry Date is not a date" in errors


@pytest.mark.django_db
def test_a_run_too_quick_to_time_and_one_whose_left_rows_were_not_checked(client_for) -> None:
    """Phases under 0.1 ms each are stored as 0: the table lists them, with no empty bar; a
    whole-sheet run that could not look for rows that left its sheet says why."""
    reason = "source 'buyers_b' feeds buyers.buyer too and has no whole-sheet run that finished"
    run = make_run(
        phase_ms={"fetch": 0.0, "schema": 0.0},
        verification={
            "sheet_count": 0,
            "database_count": 0,
            "gaps": 0,
            "left_sheet": {"action": "not checked", "reason": reason},
        },
    )
    source = (
        client_for("viewer")
        .get(reverse("admin:sync_syncrun_change", args=[run.pk]))
        .content.decode()
    )
    text = text_of(source)
    assert "phase-bar" not in source
    assert re.search(r"fetch 0 ms 0\.0% schema 0 ms 0\.0% total 0 ms 100%", text), text
    assert f"Left the sheet: not checked: {reason}" in text

"""Upload → preview → confirm → download the rejects, in a real browser.

Headless Chromium (Playwright) against Django's live server and a real Celery worker process,
as ``test_browser.py`` runs them: an operator uploads a sheet on the buyers' sync page, reads
the dry-run preview (counts, the first errors), confirms, watches the run finish with the
same counts, and downloads the rejected rows as CSV. Screenshots go to ``artifacts/``.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest
from django.db import connections

from buyers.models import Buyer
from devtools.sheets import BUYER_HEADERS, buyer_rows
from sync.models import SyncRun, SyncUpload
from tests.console.conftest import PASSWORD, make_staff_user
from tests.console.sources import ensure_roles
from tests.console.test_browser import WAIT, _shot, sheets, worker  # noqa: F401

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ROWS, BAD = 40, (5, 17, 30)  # sheet rows 7, 19 and 32 carry a date that is not one


def upload_sheet(folder: Path) -> Path:
    rows = list(buyer_rows(ROWS, 0, seed=15))
    for index in BAD:
        rows[index][BUYER_HEADERS.index("Inquiry Date")] = "2024-02-30"
    out = io.StringIO()
    csv.writer(out).writerows([BUYER_HEADERS, *rows])
    path = folder / "office export.csv"
    path.write_text(out.getvalue(), encoding="utf-8")
    return path


def test_upload_preview_confirm_and_download_rejects(
    browser,
    worker,  # noqa: F811 - a fixture
    live_server,
    sheets,  # noqa: F811 - a fixture
    tmp_path,
) -> None:
    try:
        _flow(browser, live_server, upload_sheet(tmp_path))
    finally:
        connections.close_all()  # see test_browser.py: Playwright's greenlets' connections


def _flow(browser, live_server, sheet: Path) -> None:
    ensure_roles()
    make_staff_user("operator")
    page = browser.new_page(viewport={"width": 1440, "height": 1000}, accept_downloads=True)
    page.set_default_timeout(WAIT)
    page.goto(f"{live_server.url}/admin/login/?next=/admin/console/sync/buyers/")
    page.fill("#id_username", "operator-user")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#console-sync")

    # Upload: the preview page, with what the run will do and nothing written yet.
    page.set_input_files("#upload-file", str(sheet))
    page.click("#upload-preview")
    page.wait_for_selector("#console-upload")
    good = ROWS - len(BAD)
    assert page.text_content("#upload-status") == "previewed"
    assert page.text_content("#pv-created") == str(good)
    assert page.text_content("#pv-failed") == str(len(BAD))
    errors = page.text_content("#pv-errors")
    for index in BAD:
        assert str(index + 2) in errors
    assert "Inquiry Date" in errors and "is not a date" in errors
    assert not Buyer.objects.exists()
    _shot(page, "console-upload-preview.png")

    # Confirm: the run is queued, the worker runs it, the summary shows the preview's counts.
    page.click("#confirm-upload")
    page.wait_for_selector("#run-progress")
    item = SyncUpload.objects.get()
    # The "queued" message follows its run: replaced by the run's outcome when it ends.
    assert re.search(
        rf"queued with upload {item.pk}|\(upload {item.pk}\)", page.text_content(".messagelist")
    )
    page.wait_for_selector("#run-summary", state="visible")
    page.wait_for_selector(".messagelist li.console-run-message.warning")
    assert f"(upload {item.pk}): partial" in page.text_content(".messagelist")
    assert page.text_content("#run-status") == "partial"
    assert page.text_content("#sum-created") == str(good)
    assert page.text_content("#sum-failed") == str(len(BAD))
    run = SyncRun.objects.get(pk=item.run_id)
    preview = SyncRun.objects.get(pk=item.preview_run_id)
    assert (run.created, run.updated, run.unchanged, run.failed) == (
        preview.created,
        preview.updated,
        preview.unchanged,
        preview.failed,
    )
    assert Buyer.objects.count() == good
    _shot(page, "console-upload-run.png")

    # The rejected rows, as a file to fix and upload again.
    with page.expect_download() as download:
        page.click("#run-rejects")
    path = download.value.path()
    lines = list(csv.reader(io.StringIO(Path(path).read_text(encoding="utf-8-sig"))))
    assert download.value.suggested_filename == f"buyers-run-{run.pk}-rejects-without-pii.csv"
    assert lines[0][0] == "Buyer Number" and lines[0][-3:] == ["row", "column", "reason"]
    assert [line[-3] for line in lines[1:]] == [str(index + 2) for index in BAD]
    assert all(line[-2] == "Inquiry Date" for line in lines[1:])
    page.close()

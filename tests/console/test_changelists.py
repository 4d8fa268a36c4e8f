"""Every changelist of the console (except the runs list, tests/console of the run pages) at
1280 x 800 in a real browser: its content fits the window (no column cut off at the right,
no table wider than the page), and long texts are cut with the whole text a hover away.

Rows are what the demo shows: a run's errors with long reasons, alerts with long messages,
both retry queues, the configuration of the engine and two sources, staff actions, security
events, buyers, sellers, properties, customers, orders and parts. Screenshots go to
``artifacts/changelists/`` (git-ignored).
"""

from __future__ import annotations

import datetime
import re

import pytest
from django.db import connections
from django.urls import reverse
from django.utils import timezone

from config.env import ROOT
from tests.console.conftest import PASSWORD, make_staff_user, make_world

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ARTIFACTS = ROOT / "artifacts" / "changelists"
VIEWPORT = {"width": 1280, "height": 800}
WAIT = 30_000

# Every list of the sync app but the runs list, the domain apps' lists and the security log.
CHANGELISTS = (
    "sync.errorlog",
    "sync.recordlog",
    "sync.syncalert",
    "sync.syncintent",
    "sync.recordretry",
    "sync.syncconfig",
    "sync.syncmetric",
    "sync.synchealthmetric",
    "sync.staffaction",
    "sync.securityevent",
    "buyers.buyer",
    "sellers.seller",
    "sellers.property",
    "customers.customer",
    "customers.order",
    "catalog.part",
    "catalog.stocklevel",
    "catalog.partcontentversion",
    "catalog.catalogchange",
)

LONG_REASON = (
    "Inquiry Date: '2026-13-45' is not a date; write it as YYYY-MM-DD (for "
    "example 2026-11-02) or leave the cell empty, then upload the sheet again"
)


def demo_like_rows() -> dict[str, object]:
    """``make_world`` and the long texts and big numbers the demo's pages carry."""
    from sync.models import ErrorLog, RecordRetry, SecurityEvent, StaffAction, SyncAlert
    from sync.ops.source_settings import config_for

    objects = make_world()
    run = objects["run"]
    for row in range(4, 24):
        ErrorLog.objects.create(
            run_id=run.pk,
            source="buyers",
            category="validation",
            code="not_a_date",
            row_number=row,
            natural_key=f"B-{91000 + row}",
            column="Inquiry Date",
            value_length=10,
            reason=LONG_REASON,
        )
    SyncAlert.objects.create(
        alert_type="consistency_slo",
        source="engine",
        count=4140,
        message="cache consistency 99.2% over the last 15 minutes is below the 99.9% "
        "objective: 33 of 4,140 sampled rows were stale or missing in Redis",
    )
    RecordRetry.objects.create(
        source="sellers",
        natural_key="CA90002",
        category="validation",
        attempts=5,
        status="permanently_failed",
        next_retry_at=timezone.now(),
        last_error="Contract Date: '31/02/2026' is not a date; write it as YYYY-MM-DD "
        "and upload the sheet again (5 attempts)",
    )
    config_for("sellers")
    StaffAction.objects.create(
        username="operator-user",
        action="config.update",
        target="buyers",
        ip="10.0.0.1",
        details={
            "batch_size": 200,
            "interval_seconds": 600,
            "failure_threshold": 5,
            "error_rate_threshold": 0.1,
            "recipients": "(changed)",
        },
    )
    SecurityEvent.objects.create(
        kind="denied",
        username="viewer-user",
        ip="2001:db8:85a3::8a2e:370:7334",
        path="/api/sync/config?source=buyers&with=a-rather-long-query-string",
        status_code=403,
        request_id="0f5c8a1e-3d2b-4b7a-9c1d-2e4f6a8b0c1d",
        details={
            "method": "PUT",
            "reason": "the operator role is needed to change it",
            "fields": ["batch_size", "recipients"],
        },
        created_at=timezone.now() - datetime.timedelta(minutes=3),
    )
    return objects


def _login(browser, live_server):
    make_staff_user("superuser", username="admin-user")
    page = browser.new_page(viewport=VIEWPORT)
    page.set_default_timeout(WAIT)
    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.fill("#id_username", "admin-user")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#user-tools")
    return page


# NOTE: what a person notices: a page wider than the window (the content scrolls sideways,
# the right-hand columns are cut off), or a cell whose text is one word per line.
FIT = """() => {
  const content = document.querySelector('#content');
  const table = document.querySelector('#result_list');
  const cells = table ? [...table.querySelectorAll('tbody td, tbody th')] : [];
  const lines = cell => {
    // The lines the cell's text takes: distinct baselines of its text nodes' boxes.
    const bottoms = new Set();
    const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      const range = document.createRange();
      range.selectNodeContents(node);
      for (const r of range.getClientRects()) if (r.width > 0) bottoms.add(Math.round(r.bottom));
    }
    return bottoms.size;
  };
  const crushed = [];
  for (const cell of cells) {
    const words = cell.innerText.trim().split(/\\s+/).filter(Boolean).length;
    const count = lines(cell);
    // A text of several words at one or two words a line: a column squeezed to nothing.
    if (words >= 4 && count > 3 && words / count < 2) {
      crushed.push(`${cell.className}: ${count} lines for "${cell.innerText.trim().slice(0, 40)}"`);
    }
  }
  const wrapper = table ? table.closest('.results') : null;
  return {content: content.scrollWidth, client: content.clientWidth,
          page: document.documentElement.scrollWidth, window: window.innerWidth,
          table: table ? Math.round(table.getBoundingClientRect().right) : 0,
          hidden: wrapper ? wrapper.scrollWidth - wrapper.clientWidth : 0,
          room: wrapper ? wrapper.clientWidth : 0,
          crushed: crushed.slice(0, 4)};
}"""


def test_every_changelist_fits_1280_pixels(browser, live_server) -> None:
    try:
        demo_like_rows()
        page = _login(browser, live_server)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        misfits = {}
        for label in CHANGELISTS:
            app, model = label.split(".")
            page.goto(live_server.url + reverse(f"admin:{app}_{model}_changelist"))
            page.wait_for_selector("#changelist")
            page.screenshot(path=str(ARTIFACTS / f"{app}-{model}.png"))
            fit = page.evaluate(FIT)
            if (
                fit["content"] > fit["client"]
                or fit["page"] > fit["window"]
                or fit["table"] > fit["window"]
                or fit["hidden"] > 1
                or fit["crushed"]
            ):
                misfits[label] = fit
        assert not misfits, "\n".join(f"{label}: {fit}" for label, fit in misfits.items())
    finally:
        connections.close_all()


def test_long_texts_are_cut_with_the_whole_text_on_hover(browser, live_server) -> None:
    try:
        demo_like_rows()
        page = _login(browser, live_server)
        page.goto(live_server.url + reverse("admin:sync_errorlog_changelist"))
        cell = page.locator('#result_list td[class*="reason_brief"] span[title]').first
        assert cell.get_attribute("title") == LONG_REASON
        shown = cell.inner_text()
        assert shown.endswith("…") and len(shown) < len(LONG_REASON)
    finally:
        connections.close_all()


@pytest.mark.django_db
def test_the_favicon_is_served_instead_of_a_404(client) -> None:
    response = client.get("/favicon.ico")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/svg+xml"
    assert response.content.startswith(b"<svg") and b"<title>syncops</title>" in response.content


RAW_JSON = re.compile(r"""\{\s*["'][^"'\n]{1,60}["']\s*:|\[\s*\{\s*["']""")
ISO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")


def test_read_only_pages_fit_and_show_no_json(browser, live_server) -> None:
    """A change log's changes, a snapshot, an order's items, an event's details: tables or
    sentences, never JSON; times in the console's form; nothing wider than the window."""
    from catalog.models import CatalogChange, PartContentVersion
    from sync.models import SecurityEvent, StaffAction, SyncHealthMetric, SyncMetric
    from sync.ops.source_settings import config_for

    try:
        objects = demo_like_rows()
        CatalogChange.objects.update(
            changes={"name": ["Canary bolt", "Canary bolt M6"], "price": ["1.00", "1.25"]}
        )
        pages = [
            config_for("engine"),
            config_for("buyers"),
            CatalogChange.objects.first(),
            PartContentVersion.objects.first(),
            objects["order"],
            objects["part"],
            SyncHealthMetric.objects.first(),
            SyncMetric.objects.first(),
            StaffAction.objects.first(),
            SecurityEvent.objects.last(),
            objects["alert"],
        ]
        page = _login(browser, live_server)
        misfits = {}
        for obj in pages:
            meta = obj._meta
            name = f"{meta.app_label}-{meta.model_name}-{obj.pk}-change"
            page.goto(
                live_server.url
                + reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[obj.pk])
            )
            page.wait_for_selector("#content-main")
            page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
            fit = page.evaluate(FIT)
            # What the page says, not what a form's inputs hold (a superuser edits an order)
            # nor the hint under such an input.
            text = page.evaluate("""() => { const main = document.querySelector('#content-main')
                .cloneNode(true); main.querySelectorAll('textarea, input, select, .help')
                .forEach(e => e.remove()); document.body.appendChild(main);
                const text = main.innerText; main.remove(); return text; }""")
            found = [*RAW_JSON.findall(text), *ISO_TIME.findall(text)]
            if fit["content"] > fit["client"] or fit["page"] > fit["window"] or found:
                misfits[name] = {**fit, "found": found[:3]}
        assert not misfits, "\n".join(f"{label}: {fit}" for label, fit in misfits.items())
    finally:
        connections.close_all()

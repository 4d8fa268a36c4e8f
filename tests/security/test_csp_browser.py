"""The Content-Security-Policy holds, and the console and the API docs work under it:
headless Chromium (Debian's, through Playwright) against the live server.

Every page the test opens is watched for ``securitypolicyviolation`` events and "Refused to …"
console messages: the login page, the dashboard (whose live updates must arrive: the service
checks come from its first poll of ``/api/sync/dashboard``), lists with badges and the date
range filter, a change form with Django's calendar widgets, the manual sync page's progress
bar, and ``/api/docs`` (django-ninja's Swagger UI from our static files, which must render the
operations). An inline script injected into a page is refused: the header is enforced, not
merely sent.
"""

from __future__ import annotations

import pytest
from django.db import connections
from django.utils import timezone

from sync.models import SyncRun
from tests.browser import CSP_WATCH, csp_events, is_csp_message
from tests.console.conftest import PASSWORD, make_console_rows, make_staff_user
from tests.waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

WAIT = 30_000  # milliseconds the browser waits for a condition


class Watched:
    """A page whose CSP violations (events and console messages) are collected per visit."""

    def __init__(self, browser, base: str) -> None:
        self.base = base
        self.page = browser.new_page(viewport={"width": 1280, "height": 900})
        self.page.set_default_timeout(WAIT)
        self.page.add_init_script(CSP_WATCH)
        self.console: list[str] = []
        self.page.on("console", lambda message: self.console.append(message.text))

    def open(self, path: str):
        response = self.page.goto(self.base + path)
        assert response is not None and response.status == 200, (path, response)
        return response

    def violations(self) -> list[str]:
        return csp_events(self.page) + [text for text in self.console if is_csp_message(text)]

    def assert_clean(self, where: str) -> None:
        found = self.violations()
        assert not found, f"CSP violations on {where}: {found}"


def test_console_and_api_docs_work_under_the_policy(browser, live_server) -> None:
    try:
        _flow(browser, live_server.url)
    finally:
        # NOTE: with Playwright's greenlets running, the test's ORM calls get connections
        # of their own context, which pytest-django's teardown would not close.
        connections.close_all()


def _flow(browser, base: str) -> None:
    rows = make_console_rows()
    make_staff_user("operator")
    make_staff_user("superuser")
    now = timezone.now()
    run = SyncRun.objects.create(
        source="buyers",
        target="buyers.buyer",
        trigger="manual",
        status="succeeded",
        created_at=now,
        started_at=now,
        finished_at=now,
        rows_total=40,
        rows_done=40,
        unchanged=40,
    )
    watched = Watched(browser, base)
    page = watched.page

    # The policy is sent on every page, strict for scripts and styles.
    header = watched.open("/admin/login/?next=/admin/").headers["content-security-policy"]
    assert "default-src 'self'" in header and "script-src 'self'" in header
    assert "unsafe-inline" not in header and "unsafe-eval" not in header
    assert "frame-ancestors 'none'" in header and "object-src 'none'" in header
    watched.assert_clean("the login page")

    page.fill("#id_username", "operator-user")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#console-dashboard")
    # Live updates: the service checks arrive with the script's first poll.
    page.wait_for_selector('[data-check="PostgreSQL"] .dot-ok')
    page.wait_for_selector('[data-check="Cache Redis"] .dot-ok')
    watched.assert_clean("the dashboard")

    # Badges and the date range filter are styled by class, not inline attributes.
    watched.open("/admin/sync/syncrun/")
    badge = page.locator(".console-badge").first
    assert badge.evaluate("node => getComputedStyle(node).borderRadius") == "10px"
    assert page.locator("form.console-date-range label").count() >= 2
    watched.open("/admin/sync/syncalert/")
    watched.assert_clean("the lists")

    # The sync page's progress bar takes its width from data, set by the console's script.
    watched.open(f"/admin/console/sync/buyers/?run={run.pk}")
    fill = page.locator("#run-progress .progress-bar")
    # NOTE: polled from here: Playwright's wait_for_function evaluates with eval, which the
    # policy refuses (as it should).
    wait_until(
        lambda: fill.evaluate("node => node.style.width") == "100%", what="the progress bar's width"
    )
    assert fill.evaluate("node => node.getBoundingClientRect().width") > 0
    watched.assert_clean("the manual sync page")

    # An inline script injected into the page does not run.
    page.evaluate("""() => {
        const script = document.createElement("script");
        script.textContent = "window.__injected = true";
        document.body.appendChild(script);
    }""")
    wait_until(
        lambda: page.evaluate("window.__cspViolations.length > 0"), what="a violation report"
    )
    assert page.evaluate("window.__injected === undefined")
    assert any("script-src" in v for v in page.evaluate("window.__cspViolations"))

    # A change form with Django's admin widgets (calendar and clock) as a superuser.
    page.context.clear_cookies()
    watched = Watched(browser, base)
    page = watched.page
    watched.open("/admin/login/?next=/admin/")
    page.fill("#id_username", "superuser-user")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#content")
    watched.open(f"/admin/customers/order/{rows['order'].pk}/change/")
    page.click(".datetimeshortcuts a[id^=calendarlink]")
    page.wait_for_selector(".calendarbox", state="visible")
    watched.assert_clean("an order's change form")

    # The API docs: Swagger UI from our static files renders the catalog's operations.
    watched.open("/api/docs")
    page.wait_for_selector(".opblock", timeout=WAIT)
    assert page.locator(".opblock").count() >= 5
    scripts = page.eval_on_selector_all("script[src]", "nodes => nodes.map(n => n.src)")
    assert scripts and all(src.startswith(base) for src in scripts), scripts
    watched.assert_clean("/api/docs")
    page.close()

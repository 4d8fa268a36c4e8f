"""Every console page, finished and consistent, in a real browser.

After real ingestions (a buyers sheet with failed rows, a duplicate key and values too long,
then the same sheet with rows edited and two buyers removed; a sellers sheet), an ops check
(alerts, health checks, run metrics), a cache verification and live consistency samples, and
the demo's catalog and customers, headless Chromium opens, as a *Console viewer* and as a
*Console operator*, at 1280x800 and at 1920x1080:

* the dashboard (the admin index), the sync page of a source, a run's page;
* the list and a change page of every model the console's admin classes register
  (``ConsoleModelAdmin``, read from ``admin.site``: a model registered tomorrow is walked
  too), among them alerts, configurations (a source's and the engine's), the security log,
  and a synced row's page with its cache inspector ("Cache state").

On each page it asserts (tests/console/walk_checks.py): the page answers 200; no horizontal
overflow of the content area and no clipped columns; no raw JSON; no console error, failed
request or error answer (a missing favicon included); one number, time and duration format.
Findings are collected over the whole walk and reported together, page by page.

Screenshots: ``artifacts/console/<role>-<width>/<page>.png`` (git-ignored). With
``WALK_UPDATE_DOCS=1`` the operator's dashboard and the page of the run that two buyers left
(failed rows, a duplicate key) at 1280 px are also written to
``docs/console-dashboard.png`` and ``docs/console-run.png`` (the README's pictures).
"""

from __future__ import annotations

import datetime
import os
import re
import shutil
import time
from collections.abc import Iterator

import pytest
from django.contrib import admin
from django.db import connections
from django.urls import reverse
from django.utils import timezone

from config.env import ROOT
from devtools.sheets import BUYER_HEADERS, SELLER_HEADERS, buyer_rows, seller_rows, write
from sync.console.admin_base import ConsoleModelAdmin
from tests.console import walk_checks
from tests.console.conftest import PASSWORD, make_staff_user
from tests.console.sources import ensure_roles, sources_file

ARTIFACTS = ROOT / "artifacts" / "console"
DOCS = ROOT / "docs"
ROLES = ("viewer", "operator")
SIZES = ((1280, 800), (1920, 1080))
BUYERS, LONG_VALUES = 1350, 6  # four-digit counts: the thousands separator shows
WAIT = 20_000  # milliseconds the browser waits for a page or a condition


# --------------------------------------------------------------------------- the data


@pytest.fixture
def world(settings, tmp_path) -> dict[str, object]:
    """Real runs, errors, alerts and rows behind every console page."""
    from devtools.demo_data import catalog as catalog_demo
    from devtools.demo_data import customers as customers_demo
    from sync.cache import autowarm
    from sync.cache.maintenance import verify_models
    from sync.ingest.pipeline import run_ingest
    from sync.models import RecordRetry, StaffAction, SyncIntent, SyncRun
    from sync.ops.checks import ops_check
    from sync.ops.sampler import sampler_tick

    settings.SYNC_INGEST_SOURCES_FILE = str(sources_file(tmp_path))
    _high_ids()
    ensure_roles()
    make_staff_user("viewer")
    make_staff_user("operator")
    _history()

    # Buyers: values too long for their column, dates that are none, a duplicate key.
    rows = list(buyer_rows(BUYERS, LONG_VALUES))
    date = BUYER_HEADERS.index("Inquiry Date")
    for i in (10, 500, 900):
        rows[i][date] = "2024-13-45"
    rows.append(list(rows[200]))
    write(tmp_path / "buyers.csv", BUYER_HEADERS, rows)
    first = run_ingest("buyers", trigger=SyncRun.Trigger.MANUAL)
    # The next day's sheet: three edits, two buyers gone, the duplicate still there.
    rows[3][BUYER_HEADERS.index("Status")] = "closed"
    rows[40][BUYER_HEADERS.index("Budget")] = "99000000"
    rows[41][BUYER_HEADERS.index("Notes")] = "moved to Osaka"
    del rows[700], rows[600]
    write(tmp_path / "buyers.csv", BUYER_HEADERS, rows)
    second = run_ingest("buyers", trigger=SyncRun.Trigger.SCHEDULE)
    write(tmp_path / "sellers.csv", SELLER_HEADERS, list(seller_rows(60)))
    run_ingest("sellers", trigger=SyncRun.Trigger.SCHEDULE)
    # An operator's upload of an edited sheet, previewed (a dry run) and not yet confirmed.
    from sync.ingest.uploads import preview_upload, store_upload

    rows[5][BUYER_HEADERS.index("Status")] = "on hold"
    rows[6][date] = "next week"
    sheet = write(tmp_path / "upload.csv", BUYER_HEADERS, rows)
    upload = store_upload(
        source="buyers", name="buyers-edited.csv", data=sheet.read_bytes(), username="operator-user"
    )
    preview_upload(upload)

    catalog_demo.load(count=20)
    customers_demo.load(count=10)
    # A part created and edited through the staff API's services: its change log.
    from catalog import services as catalog_services

    part = catalog_services.part_create(
        sku="PRT-90001", name="M8 flange bolt", price="2.40", quantity=1200, reserved=40
    )
    from catalog.models import StockLevel

    stock = StockLevel.objects.get(part=part)
    catalog_services.stock_update(
        part_id=part.pk, expected_version=stock.version, quantity=1150, reserved=40
    )
    verify_models()
    autowarm.run_warm()  # the cache is warm, as a worker makes it after the test's flush
    sampler_tick()
    ops_check()

    now = timezone.now()
    if not RecordRetry.objects.exists():
        RecordRetry.objects.create(
            source="buyers",
            natural_key="B-00011",
            row_number=12,
            category="network",
            attempts=2,
            last_error="the sheet did not answer in 30 s",
            next_retry_at=now + datetime.timedelta(minutes=5),
            last_run_id=second.pk,
        )
    if not SyncIntent.objects.exists():
        from catalog.models import Part

        part = Part.objects.order_by("pk").first()
        SyncIntent.objects.create(
            model="catalog.part",
            object_pk=str(part.pk),
            version=part.version,
            op=SyncIntent.Op.UPSERT,
            attempts=3,
            next_attempt_at=now + datetime.timedelta(seconds=40),
            last_error="ConnectionError: cache Redis unreachable",
            created_at=now - datetime.timedelta(minutes=2),
            updated_at=now,
        )
    StaffAction.objects.create(
        username="operator-user",
        action="sync.start",
        target="buyers",
        details={"run": second.pk},
        ip="127.0.0.1",
    )
    return {"first": first, "second": second, "upload": upload}


def _high_ids() -> None:
    """Every table's ids start at 100,000, as in a database that has lived: an id must read
    as an id (no separator) wherever a page shows one, not pass only on a fresh database."""
    from django.db import connection

    with connection.cursor() as cursor:
        for sequence in connection.introspection.sequence_list():
            cursor.execute(
                "SELECT pg_get_serial_sequence(%s, %s)",
                [sequence["table"], sequence["column"] or "id"],
            )
            (name,) = cursor.fetchone()
            if name:
                cursor.execute("SELECT setval(%s, GREATEST(100000, nextval(%s)))", [name, name])


def _history() -> None:
    """A week of earlier scheduled runs, so trends and rates have something to show."""
    from sync.models import SyncRun

    now = timezone.now()
    for hours in range(5, 7 * 24, 11):
        for source, rows, seconds in (("buyers", BUYERS, 2.4), ("sellers", 60, 0.4)):
            started = now - datetime.timedelta(hours=hours)
            failed = 0 if hours % 4 else hours % 7 + 1
            SyncRun.objects.create(
                source=source,
                target=f"{source}.{source[:-1]}",
                trigger="schedule",
                status="partial" if failed else "succeeded",
                created_at=started,
                started_at=started,
                finished_at=started + datetime.timedelta(seconds=seconds * (1 + hours % 5)),
                rows_total=rows,
                rows_done=rows,
                unchanged=rows - failed,
                failed=failed,
                gaps=failed,
            )


# --------------------------------------------------------------------------- the pages


def console_pages(world: dict[str, object]) -> list[tuple[str, str]]:
    """(name, path) of every page the walk opens, in order."""
    from sync.models import SyncConfig

    run = world["first"]  # failed rows, a duplicate key, values too long
    pages = [
        ("dashboard", reverse("admin:index")),
        ("sync-buyers", reverse("admin:console_sync", args=["buyers"])),
        (
            "sync-buyers-run",
            reverse("admin:console_sync", args=["buyers"]) + f"?run={world['second'].pk}",
        ),
        ("run", reverse("admin:sync_syncrun_change", args=[run.pk])),
        ("upload-preview", reverse("admin:console_upload", args=[world["upload"].pk])),
        ("events", reverse("admin:console_events")),
    ]
    for model, model_admin in sorted(
        admin.site._registry.items(), key=lambda item: item[0]._meta.label_lower
    ):
        if not isinstance(model_admin, ConsoleModelAdmin):
            continue  # Django's, beat's and axes' own pages: superusers only
        opts = model._meta
        name = f"{opts.app_label}.{opts.model_name}"
        pages.append(
            (f"{name}-list", reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))
        )
        rows = model._default_manager.order_by("pk")
        if model is SyncConfig:
            picks = [("", rows.get(source="buyers")), ("-engine", rows.get(source="engine"))]
        elif model.__name__ == "SyncRun":
            picks = [("-rows-left", world["second"])]
        else:
            first = rows.first()
            assert first is not None, f"the walk needs a row of {opts.label} for its change page"
            picks = [("", first)]
        pages += [
            (
                f"{name}-change{suffix}",
                reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[row.pk]),
            )
            for suffix, row in picks
        ]
    return pages


# --------------------------------------------------------------------------- the walk


def _id_words() -> re.Pattern:
    """A number after a model's name ("part 2307", "catalog.stocklevel 2307") is its id."""
    words = set(walk_checks.ID_WORDS)
    for model in admin.site._registry:
        opts = model._meta
        words |= {opts.model_name, str(opts.verbose_name), opts.label_lower}
    return walk_checks.key_word(words)


ID_WORDS = _id_words()


class Walk:
    """One browser context (a role at a size) and what its pages showed."""

    def __init__(self, browser, base_url: str, role: str, size: tuple[int, int]) -> None:
        self.base_url, self.role, self.size = base_url, role, size
        self.label = f"{role}-{size[0]}"
        self.context = browser.new_context(viewport={"width": size[0], "height": size[1]})
        self.context.set_default_timeout(WAIT)
        self.page = self.context.new_page()
        self.events: list[str] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda error: self.events.append(f"page error: {error}"))
        self.page.on("requestfailed", self._failed)
        self.page.on("response", self._response)
        self.icons: dict[str, int] = {}
        self.separated = 0  # numbers with thousands separators seen: the format check saw some
        self.folder = ARTIFACTS / self.label
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True)

    def _console(self, message) -> None:
        if message.type == "error":
            self.events.append(f"console error: {message.text[:200]}")

    def _failed(self, request) -> None:
        if request.failure != "net::ERR_ABORTED":  # a poll cut short by the next page
            self.events.append(f"request failed: {request.url} ({request.failure})")

    def _response(self, response) -> None:
        if response.status >= 400:
            self.events.append(f"HTTP {response.status}: {response.url}")

    def login(self) -> None:
        self.page.goto(f"{self.base_url}/admin/login/?next=/admin/")
        self.page.fill("#id_username", f"{self.role}-user")
        self.page.fill("#id_password", PASSWORD)
        self.page.click("input[type=submit]")
        self.page.wait_for_selector("#content")
        self.events.clear()

    def visit(self, name: str, path: str) -> list[str]:
        """Open one page; the findings on it (empty: it passes)."""
        self.events.clear()
        if name == "dashboard":
            from sync.ops.sampler import sampler_tick

            sampler_tick()  # what a worker's beat does every few seconds: a live figure
        response = self.page.goto(self.base_url + path, wait_until="load")
        found = []
        if response is None or response.status != 200:
            found.append(f"answered {response.status if response else 'nothing'}")
        if name == "dashboard":
            self._settle_dashboard(found)
        return found + self.check(name)

    def check(self, name: str) -> list[str]:
        """The checks on the page as it is now, and its screenshot."""
        found = []
        measure = walk_checks.Measure(**self.page.evaluate(walk_checks.MEASURE_JS))
        if not measure.texts:
            found.append("no visible text measured: the checks would pass blind")
        self.separated += len(re.findall(r"\b\d{1,3}(?:,\d{3})+\b", measure.body))
        found += self._icon(measure.icon)
        found += walk_checks.overflow(measure)
        found += walk_checks.raw_json(measure)
        found += walk_checks.formats(measure, ID_WORDS)
        self.page.screenshot(path=str(self.folder / f"{name}.png"), full_page=True)
        found += list(dict.fromkeys(self.events))
        return found

    def start_sync(self, source: str) -> list[str]:
        """An operator starts a sync from its page and waits for the summary: the page then
        says what happened, not that the run is queued (no stale state)."""
        self.visit(f"sync-{source}-before-start", reverse("admin:console_sync", args=[source]))
        self.events.clear()
        with self.page.expect_navigation():
            self.page.click("#start-sync")
        self.page.wait_for_selector("#run-summary", state="visible", timeout=60_000)
        found = [
            f"after the run finished the page still says: {text!r}"
            for text in self.page.locator(".messagelist li").all_inner_texts()
            if "queued" in text or "starts it shortly" in text
        ]
        return found + self.check(f"sync-{source}-after-run")

    def _settle_dashboard(self, found: list[str]) -> None:
        """The dashboard's first refresh brings the service checks: wait for it."""
        try:
            self.page.wait_for_selector(
                '[data-check="PostgreSQL"] .dot:not(.dot-wait)', timeout=WAIT
            )
        except Exception:  # noqa: BLE001 (Playwright's TimeoutError: a finding)
            found.append("the service checks never arrived (the first refresh failed)")

    def _icon(self, href: str | None) -> list[str]:
        if not href:
            return ["no <link rel=icon>: the browser asks for /favicon.ico"]
        if href not in self.icons:
            self.icons[href] = self.context.request.get(href).status
        status = self.icons[href]
        return [] if status == 200 else [f"favicon {href} answers {status}"]

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def walk_browser(browser) -> Iterator[object]:
    yield browser
    # NOTE: with Playwright's greenlets running, the ORM calls get connections of their own
    # context, which pytest-django's teardown would not close.
    connections.close_all()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_every_console_page_is_finished_at_both_sizes_for_both_roles(
    walk_browser, live_server, world, celery_worker
) -> None:
    pages = console_pages(world)
    names = {name for name, _ in pages}
    assert {
        "dashboard",
        "sync-buyers",
        "run",
        "sync.syncalert-list",
        "sync.syncconfig-list",
        "sync.securityevent-list",
        "buyers.buyer-change",
    } <= names
    report: list[str] = []
    started = time.monotonic()
    for role in ROLES:
        for size in SIZES:
            walk = Walk(walk_browser, live_server.url, role, size)
            try:
                walk.login()
                for name, path in pages:
                    report.extend(
                        f"{walk.label} {name} ({path}): {finding}"
                        for finding in walk.visit(name, path)
                    )
                assert walk.separated > len(pages), (
                    f"{walk.label}: only {walk.separated} numbers of four digits or more seen"
                )
                if role == "operator" and size[0] == 1280:
                    report.extend(
                        f"{walk.label} manual sync of buyers: {finding}"
                        for finding in walk.start_sync("buyers")
                    )
                if (
                    role == "operator"
                    and size[0] == 1280
                    and os.environ.get("WALK_UPDATE_DOCS") == "1"
                ):
                    shutil.copy(walk.folder / "dashboard.png", DOCS / "console-dashboard.png")
                    shutil.copy(
                        walk.folder / "sync.syncrun-change-rows-left.png", DOCS / "console-run.png"
                    )
            finally:
                walk.close()
    elapsed = time.monotonic() - started
    (ARTIFACTS / "walk-report.txt").write_text(
        f"{len(pages)} pages x {len(ROLES)} roles x {len(SIZES)} sizes in {elapsed:.0f} s\n"
        + "\n".join(report)
        + "\n"
    )
    assert not report, (
        f"{len(report)} findings on the console's pages "
        f"(artifacts/console/walk-report.txt):\n" + "\n".join(report)
    )


def _texts(*texts: str, column: str = "", href: str = "") -> walk_checks.Measure:
    return walk_checks.Measure(
        vw=1280,
        scrollWidth=1280,
        contentScroll=900,
        contentClient=900,
        content="div#content",
        wide=[],
        clipped=[],
        texts=[{"text": t, "href": href, "column": column} for t in texts],
        body="\n".join(texts),
    )


@pytest.mark.parametrize(
    "text",
    [
        "4140 rows",
        "throughput 9109.058663715743",
        "Dec. 6, 2026, 8:55 p.m.",
        "8:55:14 PM",
        "took 0.454 s",
        "2026-12-06T20:54:21Z",
        "2026-12-06 20:54",
        "updated 20:54:21",
        "3 seconds",
        "12.0 s",
        "99.2 %",
        "0:00:03.450000",
        "2026-12-06 20:54:21.123456+00:00",
        '{"gaps": 4}',
        "{'fetch': 0.1}",
        "2.4s",
        "sheet 4139 vs database 4140",
        "1352 rows",
        "B-00201: 202, 1352",
        "2026-12-06 20:54:21",
        "UTC 2026-12-06 20:54:21 UTC",
        "expires in 23,641 s",
        "no samples in the last 300 s",
    ],
)
def test_the_checks_flag_what_the_issue_saw(text: str) -> None:
    measure = _texts(text)
    assert walk_checks.formats(measure) + walk_checks.raw_json(measure), text


@pytest.mark.parametrize(
    ("text", "column", "href"),
    [
        ("B-000123", "", ""),
        ("PRT-00001", "", ""),
        ("CA90001", "", ""),
        ("4,140 rows", "", ""),
        ("2026-12-06 20:54:21 (Times in UTC)", "", ""),
        ("0.45 s", "", ""),
        ("0.045 s", "", ""),
        ("2.3 s", "", ""),
        ("60 s 100%", "", ""),
        ("2 min 05 s ago", "", ""),
        ("12 s", "", ""),
        ("2 min 05 s", "", ""),
        ("1 h 02 min", "", ""),
        ("45 ms", "", ""),
        ("9,109 rows/s", "", ""),
        ("99.2%", "", ""),
        ("99.991%", "", ""),
        ("run 1234", "", ""),
        ("1234", "field-id", ""),
        ("1352", "field-row Row", ""),
        ("1234", "", "/admin/x/1234/"),
        ("version 1473", "", ""),
        ("2026", "", ""),
        ("10.0.0.1", "", ""),
        ("46.21", "", ""),
        ("2026-12-06", "", ""),
        ("B-00201: rows 202, 1352", "", ""),
        ("run: 100032", "", ""),
        ("pk=17394", "", ""),
        ("run id: 100032", "", ""),
    ],
)
def test_the_checks_leave_keys_ids_and_the_console_formats_alone(
    text: str, column: str, href: str
) -> None:
    measure = _texts(text, column=column, href=href)
    assert walk_checks.formats(measure) + walk_checks.raw_json(measure) == []

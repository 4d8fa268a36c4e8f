"""The storefront in a real browser: headless Chromium (tests/browser.py) against uvicorn in its
own process (pages, static files and ``/api/events`` from one ASGI server, as ``./dev demo``
runs it), with changes made by staff in this process, through ``catalog.services``.

A customer goes from the listing to a part's page and sees stock, price and content change
without a reload; the server restarts under the page and the page catches up with what it
missed; a replay of the whole history never shows an older version; and nothing is logged as
an error (a CSP violation included) except the connection failures the drops themselves
cause. Waits are Playwright's, with deadlines (the CSP refuses ``wait_for_function``'s eval:
conditions are locators). Screenshots go to ``artifacts/`` (docs/storefront.md).
"""

from __future__ import annotations

import itertools
import re
from decimal import Decimal

import pytest
from django.db import connections

from catalog import services
from catalog.models import Part, StockLevel
from config.env import ROOT
from sync.cache.bulk import update_synced
from tests.asgi_server import AsgiServer
from tests.browser import CSP_WATCH, csp_events, is_csp_message
from tests.catalog.conftest import new_part

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ARTIFACTS = ROOT / "artifacts"
WAIT = 60_000  # milliseconds the browser waits for a condition
# What a dropped connection makes Chromium log (the drops are the test's own doing).
DROP_NOISE = re.compile(
    r"ERR_CONNECTION_REFUSED|ERR_CONNECTION_RESET|ERR_INCOMPLETE_CHUNKED_ENCODING|"
    r"ERR_EMPTY_RESPONSE|status of 503|EventSource's response has a status 503"
)


class Problems:
    """Console errors, uncaught exceptions and CSP violations of a page. While ``dropping``,
    the connection failures a drop causes are expected; nothing else ever is."""

    def __init__(self, page) -> None:
        self.found: list[str] = []
        self.dropping = False
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.found.append(f"pageerror: {error}"))

    def all(self, page) -> list[str]:
        """What went wrong so far, the policy's violation events of the current page too."""
        return self.found + [f"CSP event: {e}" for e in csp_events(page)]

    def _console(self, message) -> None:
        if message.type not in ("error", "warning"):
            return
        text = message.text
        if is_csp_message(text):
            self.found.append(f"CSP: {text}")
        elif message.type == "error" and not (self.dropping and DROP_NOISE.search(text)):
            self.found.append(f"console: {text}")


def _open(browser, url: str):
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(WAIT)
    expect.set_options(timeout=WAIT)
    page.add_init_script(CSP_WATCH)
    problems = Problems(page)
    page.goto(url)
    return page, problems


def _live(page) -> None:
    from playwright.sync_api import expect

    expect(page.locator("html")).to_have_attribute("data-live", "live")


def _set_stock(part_id: int, quantity: int, reserved: int = 0) -> int:
    stock = StockLevel.objects.get(pk=part_id)
    services.stock_update(
        part_id=part_id, expected_version=stock.version, quantity=quantity, reserved=reserved
    )
    return StockLevel.objects.get(pk=part_id).version


def _record_versions(page, part_id: int) -> None:
    """Every version and stock count the page shows from now on, in order (a MutationObserver
    the test installs; Playwright's evaluate runs outside the page's CSP)."""
    page.evaluate(
        """(id) => {
            const el = document.querySelector(`[data-part="${id}"]`);
            window.__seen = [];
            const note = () => window.__seen.push({
                version: Number(el.dataset.version),
                stockVersion: Number(el.dataset.stockVersion),
                stock: el.querySelector('[data-field="available_stock"]').textContent,
                name: el.querySelector('[data-field="name"]').textContent,
                highlighted: el.querySelectorAll(".is-changed").length,
            });
            note();
            new MutationObserver(note).observe(el, {
                subtree: true, childList: true, characterData: true, attributes: true,
            });
        }""",
        part_id,
    )


def _assert_never_older(page) -> list[dict]:
    seen = page.evaluate("window.__seen")
    for before, after in itertools.pairwise(seen):
        assert after["version"] >= before["version"], seen
        assert after["stockVersion"] >= before["stockVersion"], seen
    return seen


def _shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def test_listing_to_detail_updates_live_without_reload(browser, asgi_server) -> None:
    try:
        _listing_to_detail(browser, asgi_server)
    finally:
        # NOTE: with Playwright's greenlets running, this test's ORM calls get connections of
        # their own context, which pytest-django's teardown would not close.
        connections.close_all()


def _listing_to_detail(browser, server: AsgiServer) -> None:
    from playwright.sync_api import expect

    bolt = new_part(sku="LIVE-1", name="Hex bolt M8", quantity=12, reserved=2)
    nut = new_part(sku="LIVE-2", name="Hex nut M8", quantity=5, reserved=0)
    page, problems = _open(browser, f"{server.url}/parts/?q=LIVE-")
    _live(page)
    assert page.locator("#live-status-text").text_content() == "Live"
    card = page.locator(f'[data-part="{bolt.pk}"]')
    expect(card.locator('[data-field="available_stock"]')).to_have_text("10")

    # The listing is live too: another session's stock change shows on its card.
    version = _set_stock(bolt.pk, 9)
    expect(card.locator('[data-field="available_stock"]')).to_have_text("9")
    expect(card).to_have_attribute("data-stock-version", str(version))
    expect(page.locator(f'[data-part="{nut.pk}"] [data-field="available_stock"]')).to_have_text("5")

    card.locator("a.card-link").click()
    page.wait_for_url(f"**/parts/{bolt.pk}/")
    _live(page)
    loads: list[str] = []
    page.on("load", lambda _: loads.append(page.url))
    part = page.locator(f'[data-part="{bolt.pk}"]')
    _record_versions(page, bolt.pk)

    version = _set_stock(bolt.pk, 7, 1)  # staff, elsewhere
    expect(part.locator('[data-field="available_stock"]')).to_have_text("6")
    expect(part).to_have_attribute("data-stock-version", str(version))
    changed = [s for s in page.evaluate("window.__seen") if s["stock"] == "6"]
    assert changed[0]["highlighted"] > 0  # shown highlighted as it changed

    current = Part.objects.get(pk=bolt.pk)
    services.part_update_content(
        part_id=bolt.pk,
        expected_version=current.version,
        content={
            "name": "Hex bolt M8, zinc plated",
            "description": "<p>Now <strong>zinc plated</strong>.</p>",
            "specifications": {"size": "M8", "finish": "zinc"},
        },
    )
    update_synced(Part.objects.filter(pk=bolt.pk), price=Decimal("4.75"))
    expect(part.locator('[data-field="name"]')).to_have_text("Hex bolt M8, zinc plated")
    expect(part.locator('[data-field="price"]')).to_have_text("4.75")
    expect(part.locator('[data-field="description"] strong')).to_have_text("zinc plated")
    expect(part.locator('[data-field="specifications"] th')).to_have_text(["finish", "size"])
    expect(part).to_have_attribute("data-version", str(Part.objects.get(pk=bolt.pk).version))

    _set_stock(bolt.pk, 3, 3)  # nothing left to sell
    expect(part.locator('[data-field="stock_status"]')).to_have_text("Out of stock")
    expect(part.locator('[data-field="available_stock"]')).to_have_text("0")
    expect(part.locator(".stock")).to_have_class(re.compile("stock-out"))
    expect(page.locator("#live-announcer")).to_contain_text("out of stock")

    current = Part.objects.get(pk=bolt.pk)
    services.part_soft_delete(part_id=bolt.pk, expected_version=current.version)
    expect(part.locator('[data-field="gone_notice"]')).to_be_visible()
    expect(part.locator('[data-field="gone_notice"]')).to_contain_text("no longer available")

    _assert_never_older(page)
    assert loads == []  # all of it without a reload
    assert problems.all(page) == []
    page.close()


def test_a_server_restart_and_a_refused_reconnect_then_the_page_catches_up(
    browser, asgi_server
) -> None:
    try:
        _restart(browser, asgi_server)
    finally:
        connections.close_all()


def _restart(browser, server: AsgiServer) -> None:
    from playwright.sync_api import expect

    part = new_part(sku="DROP-1", name="Relay 12 V", quantity=20, reserved=0)
    page, problems = _open(browser, f"{server.url}/parts/{part.pk}/")
    _live(page)
    _record_versions(page, part.pk)
    stock = page.locator(f'[data-part="{part.pk}"] [data-field="available_stock"]')

    # The server goes away under the page (a deploy, a crash); changes go on meanwhile.
    problems.dropping = True
    server.stop()
    expect(page.locator("html")).to_have_attribute("data-live", "reconnecting")
    for quantity in (19, 18, 17):
        _set_stock(part.pk, quantity)
    services.part_update_content(
        part_id=part.pk,
        expected_version=Part.objects.get(pk=part.pk).version,
        content={"name": "Relay 12 V, 30 A"},
    )
    server.start()
    # EventSource resumes with Last-Event-ID: exactly what it missed, the newest last.
    expect(stock).to_have_text("17")
    expect(page.locator(f'[data-part="{part.pk}"] [data-field="name"]')).to_have_text(
        "Relay 12 V, 30 A"
    )
    _live(page)

    # Next time the reconnect is refused (an error answer, as a proxy gives while the server
    # restarts): EventSource gives up (CLOSED) and the script reconnects itself, with backoff
    # and ?last_event_id= of the last event it saw.
    refused: list[str] = []

    def refuse_once(route) -> None:
        if not refused:
            refused.append(route.request.url)
            route.fulfill(status=503, content_type="application/json", body='{"detail": "down"}')
        else:
            route.continue_()

    page.route("**/api/events*", refuse_once)
    server.stop()
    expect(page.locator("html")).to_have_attribute("data-live", "reconnecting")
    _set_stock(part.pk, 16)
    last = _set_stock(part.pk, 15)
    server.start()
    expect(stock).to_have_text("15")
    expect(page.locator(f'[data-part="{part.pk}"]')).to_have_attribute(
        "data-stock-version", str(last)
    )
    _live(page)
    assert refused, "the reconnect was never refused"
    page.unroute("**/api/events*")
    problems.dropping = False

    seen = _assert_never_older(page)
    assert [s["stock"] for s in seen][-1] == "15"
    assert "20" not in [s["stock"] for s in seen[1:]]  # never back to what it was
    _set_stock(part.pk, 14)  # and live again afterwards
    expect(stock).to_have_text("14")
    assert problems.all(page) == []
    page.close()


def test_a_replay_of_the_whole_history_never_shows_an_older_version(browser, asgi_server) -> None:
    try:
        _replay_everything(browser, asgi_server)
    finally:
        connections.close_all()


def _replay_everything(browser, server: AsgiServer) -> None:
    """The page asks for the stream from its very start (a client that lost its place):
    every old event of the part comes again, after a reset; none may show."""
    from playwright.sync_api import expect

    part = new_part(sku="OLD-1", name="Filter 40 µm", quantity=30, reserved=0)
    for quantity in (29, 28, 27, 26):
        _set_stock(part.pk, quantity)
    services.part_update_content(
        part_id=part.pk,
        expected_version=Part.objects.get(pk=part.pk).version,
        content={"name": "Filter 40 µm (new)"},
    )

    def from_the_start(route) -> None:
        url = re.sub(r"last_event_id=[^&]*", "last_event_id=0-0", route.request.url)
        route.continue_(url=url)

    page = None
    try:
        from playwright.sync_api import expect

        page, problems = _open(browser, "about:blank")
        page.route("**/api/events*", from_the_start)
        page.goto(f"{server.url}/parts/{part.pk}/")
        _record_versions(page, part.pk)
        _live(page)
        last = _set_stock(part.pk, 25)  # after the whole replay, in stream order
        root = page.locator(f'[data-part="{part.pk}"]')
        expect(root).to_have_attribute("data-stock-version", str(last))
        expect(root.locator('[data-field="available_stock"]')).to_have_text("25")
        expect(root.locator('[data-field="name"]')).to_have_text("Filter 40 µm (new)")
        seen = _assert_never_older(page)
        assert {s["stock"] for s in seen} <= {"26", "25"}, seen
        assert {s["name"] for s in seen} == {"Filter 40 µm (new)"}, seen
        assert problems.all(page) == []
    finally:
        if page is not None:
            page.close()


def test_storefront_screenshots_with_demo_data(browser, asgi_server) -> None:
    """The listing and a part's page with the demo's catalog, a live change highlighted:
    ``artifacts/storefront-*.png`` (copied to docs/ by hand when the look changes)."""
    try:
        _screenshots(browser, asgi_server)
    finally:
        connections.close_all()


def _screenshots(browser, server: AsgiServer) -> None:
    from playwright.sync_api import expect

    from devtools.demo_data import catalog

    catalog.load(count=3)  # 30 parts, as the demo has them (the demo loads 3,000)
    page, problems = _open(browser, f"{server.url}/parts/")
    _live(page)
    expect(page.locator(".card img").first).to_be_visible()
    page.wait_for_load_state("networkidle")
    _shot(page, "storefront-listing.png")

    part = Part.objects.get(sku="PRT-00007")
    page.goto(f"{server.url}/parts/{part.pk}/")
    _live(page)
    _set_stock(part.pk, 42)
    expect(page.locator('[data-field="available_stock"]')).to_have_text("42")
    page.wait_for_load_state("networkidle")
    _shot(page, "storefront-part.png")
    assert problems.all(page) == []
    page.close()

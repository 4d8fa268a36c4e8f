"""The storefront's pages without JavaScript: what a customer's first render holds, search, the
in-stock filter, pagination, 404s, bad input, no PII, the Content-Security-Policy, and that
the pages read through the cache-first selectors."""

from __future__ import annotations

import re
from decimal import Decimal
from html.parser import HTMLParser

import pytest
from django.db import connection
from django.test import Client

from catalog import services
from catalog.models import Part, StockLevel
from catalog.views import PAGE_SIZE
from config.env import ROOT
from customers.models import Customer
from sync.cache.bulk import update_synced
from sync.cache.events import stream_key
from tests.catalog.conftest import user_with

# Real commits: the write-through runs on commit, as in production.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def client() -> Client:
    return Client()


class Page(HTMLParser):
    """The parts of a page the tests look at: elements with data-part, data-field values,
    scripts, inline styles, images and links."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.parts: list[dict[str, str]] = []
        self.fields: dict[str, list[str]] = {}
        self.scripts: list[dict[str, str | None]] = []
        self.style_attributes = 0
        self.style_blocks = 0
        self.images: list[dict[str, str | None]] = []
        self.links: list[str] = []
        self._open: list[tuple[str, str]] = []  # (tag, data-field)
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "style" in a:
            self.style_attributes += 1
        if tag == "style":
            self.style_blocks += 1
        if tag == "script":
            self.scripts.append(a)
        if tag == "img":
            self.images.append(a)
        if tag == "a" and a.get("href"):
            self.links.append(a["href"])
        if "data-part" in a:
            self.parts.append(a)
        if tag not in ("img", "input", "br", "link", "meta"):
            self._open.append((tag, a.get("data-field") or ""))
            if a.get("data-field"):
                self.fields.setdefault(a["data-field"], []).append("")

    def handle_endtag(self, tag):
        while self._open:
            opened, _ = self._open.pop()
            if opened == tag:
                break

    def handle_data(self, data):
        for _tag, name in self._open:
            if name:
                self.fields[name][-1] += data

    def field(self, name: str) -> list[str]:
        return [" ".join(v.split()) for v in self.fields.get(name, [])]


def _page(client: Client, url: str, status: int = 200) -> Page:
    response = client.get(url)
    assert response.status_code == status, response.content[:500]
    return Page(response.content.decode())


def test_root_leads_customers_to_the_storefront(client) -> None:
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == "/parts/"
    assert client.get("/admin/").status_code == 302  # staff still reach the admin's login


def test_listing_renders_every_field_without_javascript(client, make_part) -> None:
    a = make_part(sku="SF-A", name="Hex bolt M6", price=Decimal("3.20"), quantity=9, reserved=2)
    b = make_part(sku="SF-B", name="Flat washer", quantity=3, reserved=3)
    page = _page(client, "/parts/")
    assert [p["data-part"] for p in page.parts] == [str(a.pk), str(b.pk)]
    a.refresh_from_db()
    assert page.parts[0]["data-version"] == str(a.version)
    assert page.parts[0]["data-stock-version"] == str(a.stock_level.version)
    assert page.field("name") == ["Hex bolt M6", "Flat washer"]
    assert page.field("price") == ["3.20", "12.50"]
    assert page.field("available_stock") == ["7", "0"]
    assert page.field("stock_status") == ["In stock", "Out of stock"]
    assert page.field("sku") == ["SF-A", "SF-B"]
    assert f"/parts/{a.pk}/" in page.links and f"/parts/{b.pk}/" in page.links
    for image in page.images:  # width and height (no layout shift), lazy below the fold
        assert image.get("width") and image.get("height")
    assert all(i.get("loading") == "lazy" for i in page.images if "/catalog/parts/" in i["src"])


def test_prices_carry_the_configured_currency_symbol(client, make_part, settings) -> None:
    settings.CATALOG_CURRENCY_SYMBOL = "CHF "
    part = make_part(sku="SF-C", price=Decimal("3.20"))
    for path in ("/parts/", f"/parts/{part.pk}/"):
        assert '<span class="currency">CHF </span><span data-field="price">3.20</span>' in (
            client.get(path).text
        )


def test_numbers_the_script_compares_are_never_localised(client, make_part) -> None:
    """USE_THOUSAND_SEPARATOR is on for the console: ids, versions and the stock count in
    the DOM contract must stay plain digits ("1,234" is NaN to the script's version check)."""
    with connection.cursor() as cursor:  # a long-lived database: versions in the millions
        # (never backwards: versions only grow, other tests' rows keep theirs)
        cursor.execute(
            "SELECT setval('sync_version_seq', "
            "GREATEST(1234566, (SELECT last_value FROM sync_version_seq)))"
        )
    part = make_part(quantity=12_345, reserved=0)
    part.refresh_from_db()
    versions = (str(part.version), str(StockLevel.objects.get(pk=part.pk).version))
    assert all(int(v) > 1_000_000 for v in versions)
    for url in ("/parts/", f"/parts/{part.pk}/"):
        page = _page(client, url)
        (root,) = [p for p in page.parts if p["data-part"] == str(part.pk)]
        assert (root["data-version"], root["data-stock-version"]) == versions
        assert page.field("available_stock") == ["12345"]


def test_detail_renders_content_specifications_stock_and_lazy_images(client, make_part) -> None:
    part = make_part(
        name="Ball bearing 6204",
        description="<p>Deep groove, <strong>sealed</strong>.</p>",
        specifications={"bore_mm": 20, "sealed": True, "material": "steel"},
        images=["/static/catalog/parts/bearing.svg", "https://img.example.com/6204.jpg"],
        quantity=4,
        reserved=0,
    )
    response = client.get(f"/parts/{part.pk}/")
    html = response.content.decode()
    page = Page(html)
    assert [p["data-part"] for p in page.parts] == [str(part.pk)]
    assert page.field("name") == ["Ball bearing 6204"]
    assert page.field("description") == ["Deep groove, sealed."]
    assert "<p>Deep groove, <strong>sealed</strong>.</p>" in html
    assert page.field("available_stock") == ["4"]
    assert page.field("stock_status") == ["In stock"]
    specs = re.findall(r'<th scope="row">([^<]*)</th><td>([^<]*)</td>', html)
    assert specs == [("bore_mm", "20"), ("material", "steel"), ("sealed", "Yes")]
    (image,) = [i for i in page.images if i.get("src") == "/static/catalog/parts/bearing.svg"]
    assert (image["loading"], image["width"], image["height"]) == ("lazy", "480", "360")
    # An image on another origin would be blocked by the CSP (img-src 'self'): a link instead.
    assert not [i for i in page.images if "img.example.com" in i["src"]]
    assert "https://img.example.com/6204.jpg" in page.links


def test_a_description_written_around_the_api_is_sanitised_on_the_page(client, make_part) -> None:
    part = make_part()
    # A bulk path writes the column directly (through to Redis), without the API's sanitiser.
    update_synced(
        Part.objects.filter(pk=part.pk),
        description='<p onclick="x()">Hi <em>there</em></p><script>alert(1)</script>'
        "<img src=x onerror=y()>",
    )
    html = client.get(f"/parts/{part.pk}/").content.decode()
    assert "<p>Hi <em>there</em></p>" in html
    assert "onclick" not in html and "alert(1)" not in html and "onerror" not in html


def test_search_matches_name_and_sku_case_insensitively(client, make_part) -> None:
    bolt = make_part(sku="SRCH-1", name="Hex bolt")
    nut = make_part(sku="SRCH-2", name="Hex nut")
    make_part(sku="OTHER-3", name="Washer")
    assert [p["data-part"] for p in _page(client, "/parts/?q=hex").parts] == [
        str(bolt.pk),
        str(nut.pk),
    ]
    assert [p["data-part"] for p in _page(client, "/parts/?q=srch-2").parts] == [str(nut.pk)]
    empty = client.get("/parts/?q=nothing-like-this").content.decode()
    assert "No parts found matching “nothing-like-this”" in empty
    assert 'value="nothing-like-this"' in empty  # the form keeps what was searched


def test_in_stock_filter(client, make_part) -> None:
    have = make_part(sku="STK-1", quantity=5, reserved=1)
    make_part(sku="STK-2", quantity=2, reserved=2)
    make_part(sku="STK-3", quantity=0, reserved=0)
    page = _page(client, "/parts/?q=STK&in_stock=1")
    assert [p["data-part"] for p in page.parts] == [str(have.pk)]
    assert 'name="in_stock" value="1" checked' in client.get("/parts/?in_stock=1").content.decode()
    assert len(_page(client, "/parts/?q=STK&in_stock=0").parts) == 2


def test_pagination_pages_links_and_edges(client, make_part) -> None:
    for n in range(PAGE_SIZE * 2 + 3):
        make_part(sku=f"PG-{n:03d}", name=f"Paged part {n}")
    first = client.get("/parts/?q=PG-").content.decode()
    assert len(Page(first).parts) == PAGE_SIZE
    assert f"Showing 1–{PAGE_SIZE} of {PAGE_SIZE * 2 + 3} parts" in first  # noqa: RUF001
    assert 'href="?q=PG-&amp;page=2" rel="next"' in first
    assert 'aria-current="page"' in first
    last = _page(client, "/parts/?q=PG-&page=3")
    assert last.field("name") == ["Paged part 48", "Paged part 49", "Paged part 50"]
    # Past the end: the last page, not an error or an empty page.
    beyond = _page(client, "/parts/?q=PG-&page=99")
    assert beyond.field("name") == last.field("name")
    huge = _page(client, "/parts/?q=PG-&page=" + "9" * 40)
    assert huge.field("name") == last.field("name")


def test_bad_parameters_are_a_clear_400_never_a_500(client) -> None:
    cases = {
        "/parts/?page=abc": "The page number must be a whole number of 1 or more.",
        "/parts/?page=0": "The page number must be a whole number of 1 or more.",
        "/parts/?page=-3": "The page number must be a whole number of 1 or more.",
        "/parts/?page=%C2%B2": "The page number must be a whole number of 1 or more.",
        "/parts/?q=" + "x" * 101: "The search may be at most 100 characters long.",
        "/parts/?q=a%00b": "The search may not contain a NUL character.",
        "/parts/?in_stock=maybe": "The in-stock filter is either on (1) or off (0).",
    }
    for url, message in cases.items():
        response = client.get(url)
        assert response.status_code == 400, url
        assert message in response.content.decode(), url
    assert client.get("/parts/?q=" + "x" * 100).status_code == 200
    assert client.post("/parts/").status_code == 405


def test_soft_deleted_and_missing_parts_are_a_styled_404(client, make_part) -> None:
    part = make_part()
    assert client.get(f"/parts/{part.pk}/").status_code == 200
    services.part_soft_delete(part_id=part.pk, expected_version=part.version)
    for url in (f"/parts/{part.pk}/", "/parts/999999999/", "/parts/abc/", "/parts/0/"):
        response = client.get(url)
        assert response.status_code == 404, url
        html = response.content.decode()
        assert "Part not found" in html and "storefront.css" in html, url
    assert client.get("/parts/" + "9" * 30 + "/").status_code == 404
    assert part.sku not in client.get("/parts/").content.decode()


def test_pages_carry_the_csp_and_no_inline_style_or_script_without_the_nonce(
    client, make_part
) -> None:
    part = make_part()
    for url in ("/parts/", f"/parts/{part.pk}/", "/parts/?page=abc", "/parts/424242/"):
        response = client.get(url)
        policy = response["Content-Security-Policy"]
        assert "style-src 'self'" in policy and "img-src 'self' data:" in policy
        page = Page(response.content.decode())
        assert (page.style_attributes, page.style_blocks) == (0, 0), url
        nonce = re.search(r"'nonce-([^']+)'", policy)
        for script in page.scripts:
            assert script.get("src", "").startswith("/static/catalog/"), url
            assert nonce and script.get("nonce") == nonce.group(1), url
    live = Page(client.get(f"/parts/{part.pk}/").content.decode())
    assert [s["src"] for s in live.scripts] == ["/static/catalog/storefront.js"]


def test_pages_show_no_pii(client, make_part) -> None:
    """Who changed a part (user, IP, request id) stays in the change log; customers are
    nowhere near these pages."""
    customer = Customer.objects.create(
        customer_number="SF-C1", name="Ann Storefront", email="ann.sf@example.com", phone="+4912345"
    )
    part = make_part(name="Plain part")
    staff = user_with(None, "stock-keeper-sf")
    services.stock_update(
        part_id=part.pk,
        expected_version=part.stock_level.version,
        quantity=3,
        reserved=0,
        actor=services.Actor(user=staff, ip="203.0.113.77", request_id="req-sf-1"),
    )
    for url in ("/parts/", "/parts/?q=plain", f"/parts/{part.pk}/", "/parts/999/"):
        html = client.get(url).content.decode()
        for value in (
            customer.email,
            customer.phone,
            customer.name,
            "stock-keeper-sf",
            "203.0.113.77",
            "req-sf-1",
        ):
            assert value not in html, (url, value)
    assert not client.cookies  # anonymous pages: no session, nothing to tie a visitor to


def test_reads_come_from_the_cache_first(client, make_part, django_assert_num_queries) -> None:
    part = make_part(name="Cached name")
    client.get(f"/parts/{part.pk}/")  # the first read fills the cache when it must
    with django_assert_num_queries(0):  # both rows from Redis
        again = _page(client, f"/parts/{part.pk}/")
    assert again.field("name") == ["Cached name"]
    # A write around the write-through (the trigger queues an intent for replay, which has
    # not run): PostgreSQL has the new name, the page still shows the cached row at its version.
    before = Part.objects.get(pk=part.pk).version
    Part.objects.filter(pk=part.pk).update(name="Only in PostgreSQL")
    detail = _page(client, f"/parts/{part.pk}/")
    assert detail.field("name") == ["Cached name"]
    assert detail.parts[0]["data-version"] == str(before)
    listing = _page(client, "/parts/")
    assert listing.field("name") == ["Cached name"]


def test_the_page_carries_the_stream_position_read_before_the_parts(
    client, make_part, redis_raw
) -> None:
    part = make_part()
    newest = redis_raw.xrevrange(stream_key("catalog"), count=1)[0][0].decode()
    html = client.get(f"/parts/{part.pk}/").content.decode()
    assert f'data-last-event-id="{newest}"' in html


def test_demo_parts_get_local_images_once_and_the_page_shows_them(client, make_part) -> None:
    from devtools.demo_data import catalog as demo

    # A part loaded by an older demo: the old image host, which never resolved.
    old = make_part(sku="PRT-00001", images=["https://images.example.com/parts/00001.jpg"])
    name = old.name
    kept = make_part(sku="PRT-00002", images=["https://cdn.example.net/mine.png"])  # staff's
    demo.load(count=1)
    old.refresh_from_db()
    assert old.name == name  # the demo never renames a part (staff edits stay)
    [image] = old.images
    assert image in {demo.image_url(kind) for kind in demo.IMAGES}
    assert old.images[0].startswith("/static/catalog/parts/")
    assert (ROOT / "static" / old.images[0].removeprefix("/static/")).is_file()
    kept.refresh_from_db()
    assert kept.images == ["https://cdn.example.net/mine.png"]
    page = _page(client, f"/parts/{old.pk}/")
    assert [i["src"] for i in page.images if "/parts/" in i["src"]] == old.images
    demo.load(count=1)  # idempotent: the same images again, staff's still kept
    old.refresh_from_db()
    kept.refresh_from_db()
    assert (old.images, kept.images) == ([image], ["https://cdn.example.net/mine.png"])
    for part in Part.objects.filter(sku__startswith="PRT-").exclude(pk=kept.pk):
        assert (ROOT / "static" / part.images[0].removeprefix("/static/")).is_file()

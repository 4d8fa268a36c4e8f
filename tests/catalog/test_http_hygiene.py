"""HTTP hygiene of the public catalog API and the pages: compressed bodies (never the event
stream), ``?fields=`` partial answers with ETags of their own, the ``Server-Timing`` header,
and the slow-request log (no query strings, no SQL parameters, fail open)."""

from __future__ import annotations

import gzip
import json
import logging
import re

import pytest
from django.test import Client

from catalog import services
from catalog.models import StockLevel
from config import compression
from tests.catalog.conftest import new_part
from tests.catalog.test_sse import Events, asgi  # noqa: F401 - the uvicorn fixture

pytestmark = pytest.mark.django_db(transaction=True)

TIMING = re.compile(r"^(\w+);dur=(\d+(?:\.\d+)?)$")


@pytest.fixture
def client() -> Client:
    return Client()


def timings(header: str) -> dict[str, float]:
    """``Server-Timing`` as name → milliseconds; every entry must parse."""
    found = {}
    for entry in header.split(","):
        match = TIMING.match(entry.strip())
        assert match, f"unparseable Server-Timing entry {entry!r} in {header!r}"
        found[match[1]] = float(match[2])
    return found


def _parts(n: int = 3) -> list:
    return [new_part(sku=f"HYG-{i}", name=f"Hygiene part {i}") for i in range(n)]


# --------------------------------------------------------------------------- compression


def test_json_is_gzipped_when_asked_and_decodes_to_the_same_body(client) -> None:
    _parts()
    plain = client.get("/api/parts?q=HYG", headers={"accept-encoding": "identity"})
    assert "Content-Encoding" not in plain
    assert "Accept-Encoding" in plain["Vary"]
    zipped = client.get("/api/parts?q=HYG", headers={"accept-encoding": "gzip, deflate"})
    assert zipped["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in zipped["Vary"]
    assert len(zipped.content) < len(plain.content)
    assert json.loads(gzip.decompress(zipped.content)) == plain.json()
    # Django's BREACH padding is kept: a random-length file name in the gzip header.
    assert zipped.content[3] & gzip.FNAME
    # The ETag turns weak on the compressed copy, and still revalidates (either way round).
    assert zipped["ETag"] == "W/" + plain["ETag"]
    again = client.get(
        "/api/parts?q=HYG", headers={"accept-encoding": "gzip", "if-none-match": zipped["ETag"]}
    )
    assert again.status_code == 304


def test_br_is_used_only_when_brotli_is_installed_and_never_a_coding_not_asked_for(
    client,
) -> None:
    _parts()
    plain = client.get("/api/parts?q=HYG").json()
    only_br = client.get("/api/parts?q=HYG", headers={"accept-encoding": "br"})
    assert "Accept-Encoding" in only_br["Vary"]
    if compression.brotli is None:
        assert "Content-Encoding" not in only_br
        assert only_br.json() == plain
    else:  # pragma: no cover - brotli is not in every environment
        assert only_br["Content-Encoding"] == "br"
        assert json.loads(compression.brotli.decompress(only_br.content)) == plain
    both = client.get("/api/parts?q=HYG", headers={"accept-encoding": "gzip;q=0.5, br"})
    assert both["Content-Encoding"] == ("gzip" if compression.brotli is None else "br")
    refused = client.get("/api/parts?q=HYG", headers={"accept-encoding": "gzip;q=0, br;q=0"})
    assert "Content-Encoding" not in refused


def test_a_signed_in_request_gets_padded_gzip_never_brotli(viewer_client) -> None:
    _parts()
    page = viewer_client.get("/api/parts?q=HYG", headers={"accept-encoding": "br, gzip"})
    assert page["Content-Encoding"] == "gzip"
    assert page.content[3] & gzip.FNAME


def _without_per_response_values(html: str) -> str:
    """The CSRF token is masked afresh and the CSP nonce is new on every response."""
    html = re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "csrf", html)
    return re.sub(r'nonce="[^"]+"', "nonce", html)


def test_html_is_gzipped_with_the_padding(client) -> None:
    plain = client.get("/admin/login/")
    zipped = client.get("/admin/login/", headers={"accept-encoding": "gzip"})
    assert zipped["Content-Encoding"] == "gzip" and "Accept-Encoding" in zipped["Vary"]
    assert zipped.content[3] & gzip.FNAME
    html = gzip.decompress(zipped.content).decode()
    assert "csrfmiddlewaretoken" in html
    assert _without_per_response_values(html) == _without_per_response_values(
        plain.content.decode()
    )


def test_tiny_and_non_text_bodies_are_left_alone(client) -> None:
    tiny = client.get("/api/parts/999999", headers={"accept-encoding": "gzip"})
    assert tiny.status_code == 404 and "Content-Encoding" not in tiny
    assert compression.COMPRESSIBLE.match("application/json")
    assert compression.COMPRESSIBLE.match("text/html; charset=utf-8")
    assert compression.COMPRESSIBLE.match("application/problem+json")
    for kind in ("text/event-stream", "image/png", "application/octet-stream", "application/zip"):
        assert not compression.COMPRESSIBLE.match(kind), kind
    assert compression.accepted("gzip;q=0.5, BR, identity;q=x") == {
        "gzip": 0.5,
        "br": 1.0,
        "identity": 0.0,
    }


@pytest.mark.slow
def test_under_uvicorn_json_is_compressed_and_the_event_stream_never_is(asgi) -> None:  # noqa: F811
    _parts()
    listed = asgi.get("/api/parts?q=HYG", headers={"accept-encoding": "gzip"})
    assert listed.headers["content-encoding"] == "gzip"
    assert len(listed.json()["items"]) == 3  # httpx decoded it
    assert set(timings(listed.headers["server-timing"])) == {"cache", "db", "total"}

    part = new_part(quantity=5, reserved=0)
    with asgi.stream(
        "GET", f"/api/events?part={part.pk}", headers={"accept-encoding": "gzip, br, deflate"}
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        assert "content-encoding" not in response.headers
        assert "server-timing" not in response.headers
        events = Events(response)
        assert events.next() == {"retry": "2000"}
        stock = StockLevel.objects.get(pk=part.pk)
        services.stock_update(
            part_id=part.pk, expected_version=stock.version, quantity=4, reserved=0
        )
        frame = events.next()
    assert frame["event"] == "stock"
    assert json.loads(frame["data"])["data"]["quantity"] == 4


# --------------------------------------------------------------------------- ?fields=


def test_fields_trims_each_part_and_keeps_the_id(client) -> None:
    part = new_part(quantity=7, reserved=2)
    one = client.get(f"/api/parts/{part.pk}?fields=name,price,stock")
    assert one.status_code == 200
    assert one.json() == {
        "id": part.pk,
        "name": part.name,
        "price": "12.50",
        "stock": {
            "quantity": 7,
            "reserved": 2,
            "available_stock": 5,
            "is_in_stock": True,
            "version": one.json()["stock"]["version"],
        },
    }
    dotted = client.get(f"/api/parts/{part.pk}?fields= name , stock.available_stock")
    assert dotted.json() == {"id": part.pk, "name": part.name, "stock": {"available_stock": 5}}
    # "stock" whole wins over single stock keys
    both = client.get(f"/api/parts/{part.pk}?fields=stock.quantity,stock").json()
    assert set(both["stock"]) == {
        "quantity",
        "reserved",
        "available_stock",
        "is_in_stock",
        "version",
    }
    listed = client.get(f"/api/parts?q={part.sku}&fields=sku").json()
    assert listed["count"] == 1 and listed["items"] == [{"id": part.pk, "sku": part.sku}]


def test_unknown_or_no_fields_are_a_422_naming_them(client) -> None:
    part = new_part()
    bad = client.get(f"/api/parts/{part.pk}?fields=name,secret,stock.nope")
    assert bad.status_code == 422
    [error] = bad.json()["detail"]
    assert error["loc"] == ["query", "fields"]
    assert "unknown fields secret, stock.nope" in error["msg"]
    assert "allowed: id, sku, name" in error["msg"] and "stock.available_stock" in error["msg"]
    listed = client.get("/api/parts?fields=nam")
    assert listed.status_code == 422
    assert "unknown field nam;" in listed.json()["detail"][0]["msg"]
    empty = client.get("/api/parts?fields=,")
    assert empty.status_code == 422
    assert "name at least one field" in empty.json()["detail"][0]["msg"]


def test_each_field_set_has_its_own_etag_and_304(client) -> None:
    part = new_part()
    url = f"/api/parts/{part.pk}"
    full = client.get(url)["ETag"]
    names = client.get(f"{url}?fields=name")["ETag"]
    prices = client.get(f"{url}?fields=price")["ETag"]
    assert len({full, names, prices}) == 3
    # the same set in another order (and with the implied id) is the same shape
    assert client.get(f"{url}?fields=name,id")["ETag"] == names
    assert client.get(f"{url}?fields=name", headers={"if-none-match": names}).status_code == 304
    # a copy of another shape is never confirmed
    for other in (full, prices):
        again = client.get(f"{url}?fields=name", headers={"if-none-match": other})
        assert again.status_code == 200 and again.json() == {"id": part.pk, "name": part.name}
    assert client.get(url, headers={"if-none-match": names}).status_code == 200
    listed = client.get("/api/parts?fields=name")["ETag"]
    assert listed != client.get("/api/parts")["ETag"]
    services.part_update_content(
        part_id=part.pk, expected_version=part.version, content={"name": "Renamed"}
    )
    changed = client.get(f"{url}?fields=name", headers={"if-none-match": names})
    assert changed.status_code == 200 and changed.json()["name"] == "Renamed"


def test_the_openapi_document_describes_fields(client) -> None:
    schema = client.get("/api/openapi.json").json()
    for path in ("/api/parts", "/api/parts/{part_id}"):
        [param] = [p for p in schema["paths"][path]["get"]["parameters"] if p["name"] == "fields"]
        assert param["in"] == "query" and "stock.available_stock" in param["description"]


# --------------------------------------------------------------------------- Server-Timing


def test_server_timing_counts_redis_and_postgresql(client, settings) -> None:
    part = new_part()
    miss = client.get(f"/api/parts/{part.pk}")  # Redis asked, PostgreSQL read, Redis filled
    figures = timings(miss["Server-Timing"])
    assert set(figures) == {"cache", "db", "total"}
    assert figures["cache"] > 0 and figures["db"] > 0
    assert figures["cache"] <= figures["total"] and figures["db"] <= figures["total"]
    hit = timings(client.get(f"/api/parts/{part.pk}")["Server-Timing"])
    assert hit["cache"] > 0  # both rows from Redis
    assert "Server-Timing" in client.get("/api/parts/999999")  # every answer, errors too
    settings.HTTP_SERVER_TIMING = False
    assert "Server-Timing" not in client.get(f"/api/parts/{part.pk}")


# --------------------------------------------------------------------------- slow requests


def test_slow_requests_and_queries_are_kept_without_query_strings_or_parameters(
    client, settings, caplog
) -> None:
    from sync.ops import slow

    settings.HTTP_SLOW_REQUEST_MS = 0
    settings.HTTP_SLOW_QUERY_MS = 0
    new_part(sku="SLOW-1", name="Slow part")
    secret = "someone.private@example.com"
    with caplog.at_level(logging.WARNING, logger="sync.ops.slow"):
        response = client.get(f"/api/parts?q={secret}", headers={"x-request-id": "slow-test-1"})
    assert response.status_code == 200
    [request] = [e for e in slow.recent("request") if e["request_id"] == "slow-test-1"]
    assert (request["method"], request["path"], request["status"]) == ("GET", "/api/parts", 200)
    assert request["ms"] >= 0
    queries = [e for e in slow.recent("query") if e["request_id"] == "slow-test-1"]
    assert queries, "the request's statements were not kept"
    assert all(q["path"] == "/api/parts" for q in queries)
    assert any("LIKE" in q["sql"].upper() and "%s" in q["sql"] for q in queries)
    stored = json.dumps([request, *queries], default=str)
    assert "example.com" not in stored and "private" not in stored
    lines = [r.getMessage() for r in caplog.records]
    assert any(line.startswith("slow request: GET /api/parts 200") for line in lines)
    assert any(line.startswith("slow query:") for line in lines)
    assert not any("example.com" in line for line in lines)


def test_only_the_newest_entries_are_kept(client, settings) -> None:
    from sync.ops import slow

    settings.HTTP_SLOW_REQUEST_MS = 0
    settings.HTTP_SLOW_QUERY_MS = 10**9  # requests only
    settings.HTTP_SLOW_KEEP = 3
    for n in range(5):
        client.get("/api/parts/999999", headers={"x-request-id": f"keep-{n}"})
    assert [e["request_id"] for e in slow.recent("request")] == ["keep-4", "keep-3", "keep-2"]
    assert slow.recent("query") == []


@pytest.mark.slow
def test_a_request_still_succeeds_when_redis_is_paused(client, settings, redis_control) -> None:
    settings.HTTP_SLOW_REQUEST_MS = 0
    settings.HTTP_SLOW_QUERY_MS = 0
    part = new_part()
    redis_control.pause()
    try:
        response = client.get(f"/api/parts/{part.pk}", headers={"accept-encoding": "gzip"})
        assert response.status_code == 200
        # NOTE: one part's body is short enough that gzip with its padding may not pay.
        body = response.content
        if response.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        assert json.loads(body)["id"] == part.pk
        assert set(timings(response["Server-Timing"])) == {"cache", "db", "total"}
        assert client.get("/api/parts?limit=1").status_code == 200
    finally:
        redis_control.resume()

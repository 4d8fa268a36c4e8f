"""Bad input to any API is a JSON 4xx in that API's envelope.

NUL bytes and unpaired surrogates (PostgreSQL stores neither), bodies above
``DATA_UPLOAD_MAX_MEMORY_SIZE`` (413, unread), JSON ``true`` for an integer, a content PATCH
that changes nothing, a version no sequence issued; a ``Last-Event-ID`` the stream does not
hold gets ``event: reset``; the OpenAPI document names the conditional headers and the
error answers.
"""

from __future__ import annotations

import json

import pytest
from asgiref.sync import async_to_sync
from django.test import Client

from catalog import streaming
from catalog.models import PartContentVersion, StockLevel
from sync.cache.events import stream_key
from sync.models import SyncConfig
from tests.catalog.conftest import new_part
from tests.console.conftest import make_staff_user

pytestmark = pytest.mark.django_db
BIG = b'{"quantity": 1, "pad": "' + b"x" * (3 * 1024 * 1024) + b'"}'


@pytest.fixture
def operator() -> Client:
    client = Client()
    client.force_login(
        make_staff_user("operator", username="input-operator"),
        backend="django.contrib.auth.backends.ModelBackend",
    )
    return client


def _json_error(response, status: int, key: str = "detail") -> str:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert isinstance(body[key], str | list) and body[key]
    return json.dumps(body[key])


@pytest.mark.parametrize("query", ["q=%00", "q=valve%00", "q=%00%00%00"])
def test_a_nul_byte_in_the_search_is_a_422(client, query: str) -> None:
    response = client.get(f"/api/parts?{query}")
    assert "q" in _json_error(response, 422)


def test_a_3_mb_body_is_a_json_413_on_both_apis_and_changes_nothing(operator) -> None:
    part = new_part(quantity=5)
    stock = operator.put(
        f"/api/staff/parts/{part.pk}/stock",
        BIG,
        content_type="application/json",
        HTTP_IF_MATCH='"1"',
    )
    assert "too large" in _json_error(stock, 413)
    assert StockLevel.objects.get(pk=part.pk).quantity == 5
    before = list(SyncConfig.objects.values_list("version", flat=True))
    config = operator.put("/api/sync/config", BIG, content_type="application/json")
    assert "too large" in _json_error(config, 413, key="error")
    assert list(SyncConfig.objects.values_list("version", flat=True)) == before
    # anonymous and on a read too: the size is refused before anything else reads it
    assert Client().post("/api/parts", BIG, content_type="application/json").status_code == 413


@pytest.mark.parametrize("length", ["nope", "-1", "1e3", "²"])
def test_a_content_length_that_is_no_number_is_a_json_400(operator, length: str) -> None:
    part = new_part(quantity=5)
    response = operator.put(
        f"/api/staff/parts/{part.pk}/stock",
        b'{"quantity": 1}',
        content_type="application/json",
        HTTP_IF_MATCH='"1"',
        CONTENT_LENGTH=length,
    )
    assert "Content-Length" in _json_error(response, 400)
    config = operator.put(
        "/api/sync/config", b"{}", content_type="application/json", CONTENT_LENGTH=length
    )
    _json_error(config, 400, key="error")
    assert StockLevel.objects.get(pk=part.pk).quantity == 5


@pytest.mark.parametrize(
    "body",
    [
        {"quantity": True},
        {"quantity": "5"},
        {"quantity": 5.0},
        {"quantity": 5, "reserved": False},
        {"quantity": 5, "version": True},
        {"quantity": 5, "version": 2**70},
        {"quantity": 5, "colour": "red"},
    ],
)
def test_stock_numbers_are_strict_json_integers(operator, body: dict) -> None:
    part = new_part(quantity=5)
    response = operator.put(
        f"/api/staff/parts/{part.pk}/stock",
        json.dumps(body),
        content_type="application/json",
        HTTP_IF_MATCH='"1"',
    )
    _json_error(response, 422)
    assert StockLevel.objects.get(pk=part.pk).quantity == 5


@pytest.mark.parametrize(
    "body",
    [
        {"colour": "red"},
        {"nmae": "typo"},
        {},
        {"version": 1},
        {"name": "bolt\x00"},
        {"description": "a\x00b"},
        {"specifications": {"k\x00": "v"}},
        {"specifications": {"k": "v\x00"}},
        {"images": ["https://img.example.com/\x00.jpg"]},
        {"name": "bolt\ud800"},
        {"specifications": {"k": float("nan")}},
        {"specifications": {"k": float("inf")}},
    ],
)
def test_a_content_patch_that_cannot_be_stored_as_sent_is_a_422(operator, body: dict) -> None:
    part = new_part()
    versions = PartContentVersion.objects.filter(part=part).count()
    response = operator.patch(
        f"/api/staff/parts/{part.pk}/content",
        json.dumps(body),
        content_type="application/json",
        HTTP_IF_MATCH=f'"{part.version}"',
    )
    _json_error(response, 422)
    assert PartContentVersion.objects.filter(part=part).count() == versions


@pytest.mark.parametrize(
    ("if_match", "status"),
    [
        ('"²"', 428),
        ('"١٢"', 428),
        ('"' + "9" * 40 + '"', 400),
        ('"4611686018427387905"', 400),
    ],
)
def test_an_if_match_that_is_no_version_is_a_4xx(operator, if_match: str, status: int) -> None:
    part = new_part(quantity=5)
    response = operator.put(
        f"/api/staff/parts/{part.pk}/stock",
        json.dumps({"quantity": 1}),
        content_type="application/json",
        HTTP_IF_MATCH=if_match,
    )
    _json_error(response, status)
    assert StockLevel.objects.get(pk=part.pk).quantity == 5


@pytest.mark.django_db(transaction=True)
def test_a_last_event_id_in_the_future_gets_a_reset_then_live_events(redis_raw) -> None:
    part = new_part(quantity=9, reserved=0)  # commits: its events are on the stream
    newest = redis_raw.xrevrange(stream_key(streaming.STREAM), count=1)
    ms = int(newest[0][0].decode().split("-")[0])
    future = f"{ms + 10**9}-0"

    async def scenario() -> list[str]:
        from asgiref.sync import sync_to_async

        from catalog import services

        stream = streaming.event_stream(set(), future)
        frames = [await anext(stream), await anext(stream)]  # retry, then reset
        stock = await sync_to_async(StockLevel.objects.get)(pk=part.pk)
        await sync_to_async(services.stock_update)(
            part_id=part.pk, expected_version=stock.version, quantity=3, reserved=0
        )
        frames.append(await anext(stream))
        await stream.aclose()
        return frames

    retry, reset, live = async_to_sync(scenario)()
    assert retry.startswith("retry:")
    assert reset.startswith("event: reset\n") and future in reset
    assert live.startswith("id: ") and '"quantity": 3' in live


def test_the_openapi_document_names_headers_and_error_answers(client) -> None:
    doc = client.get("/api/openapi.json").json()

    def operation(path: str, method: str) -> dict:
        return doc["paths"][path][method]

    def headers(op: dict) -> set[str]:
        return {p["name"] for p in op.get("parameters", []) if p["in"] == "header"}

    read = operation("/api/parts/{part_id}", "get")
    assert "If-None-Match" in headers(read)
    assert "ETag" in read["responses"]["200"]["headers"]
    assert "ETag" in read["responses"]["304"]["headers"]
    assert {"400", "413", "429"} <= set(read["responses"])
    for path, method in [
        ("/api/staff/parts/{part_id}/stock", "put"),
        ("/api/staff/parts/{part_id}/content", "patch"),
        ("/api/staff/parts/{part_id}", "delete"),
        ("/api/staff/parts/{part_id}/restore", "post"),
        ("/api/staff/parts/{part_id}/rollback/{number}", "post"),
    ]:
        write = operation(path, method)
        assert "If-Match" in headers(write), path
        assert {"400", "409", "413", "428", "429"} <= set(write["responses"]), path
        assert "ETag" in write["responses"]["200"]["headers"], path
        assert {"Retry-After", "RateLimit-Limit"} <= set(write["responses"]["429"]["headers"])
        assert write["responses"]["429"]["content"], path  # one entry, with its body
    assert "Last-Event-ID" in headers(operation("/api/events", "get"))


@pytest.mark.parametrize(
    ("method", "url", "status", "key"),
    [
        ("get", "/api/no-such-thing", 404, "detail"),
        ("get", "/api/sync/no-such-thing", 404, "error"),
        ("delete", "/api/parts", 405, "detail"),
    ],
)
def test_framework_error_pages_under_api_are_json(client, method, url, status, key) -> None:
    response = getattr(client, method)(url)
    assert response.status_code == status
    assert response["Content-Type"].startswith("application/json")
    assert response.json()[key]
    if status == 405:
        assert response["Allow"] == "GET" and "GET" in response.json()[key]


def test_a_form_with_too_many_fields_is_a_json_400() -> None:
    # NOTE: Django's CSRF check reads the form and raises TooManyFieldsSent: its HTML 400 page
    client = Client(enforce_csrf_checks=True)
    client.cookies["csrftoken"] = "a" * 32  # past the cookie check, to the form's token
    fields = "&".join(f"f{n}=1" for n in range(1_500))
    response = client.post(
        "/api/sync/manual", fields, content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 400
    assert response.json()["error"].startswith("bad request")

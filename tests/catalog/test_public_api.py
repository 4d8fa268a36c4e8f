"""Public reads: cache-first, ETag/304, never stale after a commit, soft delete is a 404."""

from __future__ import annotations

import pytest
from django.test import Client

from catalog import services
from catalog.models import Part
from sync.cache.keys import cache_key

# Real commits: the write-through runs on commit, as in production, and reads outside a
# transaction may fill Redis.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def client() -> Client:
    return Client()


def _detail(client: Client, part: Part, **headers):
    return client.get(f"/api/parts/{part.pk}", headers=headers)


def test_detail_includes_stock_and_is_served_from_redis(
    client, make_part, django_assert_num_queries
) -> None:
    part = make_part(quantity=7, reserved=2)
    first = _detail(client, part)
    assert first.status_code == 200
    body = first.json()
    assert body["stock"] == {
        "quantity": 7,
        "reserved": 2,
        "available_stock": 5,
        "is_in_stock": True,
        "version": body["stock"]["version"],
    }
    assert body["sku"] == part.sku
    assert body["price"] == "12.50"
    assert first["Cache-Control"] == "no-cache"
    with django_assert_num_queries(0):  # both rows come from Redis
        again = _detail(client, part)
    assert again.json() == body


def test_etag_round_trip_and_a_stock_change_changes_it(client, make_part) -> None:
    part = make_part()
    first = _detail(client, part)
    tag = first["ETag"]
    not_modified = _detail(client, part, if_none_match=tag)
    assert not_modified.status_code == 304
    assert not_modified.content == b""
    assert not_modified["ETag"] == tag
    assert _detail(client, part, if_none_match="*").status_code == 304
    stock = first.json()["stock"]
    services.stock_update(
        part_id=part.pk, expected_version=stock["version"], quantity=1, reserved=0
    )
    changed = _detail(client, part, if_none_match=tag)
    assert changed.status_code == 200  # visible on the very next read (write-through)
    assert changed["ETag"] != tag
    assert changed.json()["stock"]["quantity"] == 1


def test_a_content_change_changes_the_etag(client, make_part) -> None:
    part = make_part()
    tag = _detail(client, part)["ETag"]
    services.part_update_content(
        part_id=part.pk, expected_version=part.version, content={"name": "Renamed"}
    )
    changed = _detail(client, part, if_none_match=f'W/{tag}, "other"')
    assert changed.status_code == 200
    assert changed.json()["name"] == "Renamed"


def test_soft_deleted_part_is_404_and_a_tombstone_in_redis(client, make_part, redis_raw) -> None:
    part = make_part()
    assert _detail(client, part).status_code == 200
    services.part_soft_delete(part_id=part.pk, expected_version=part.version)
    gone = _detail(client, part)
    assert gone.status_code == 404
    assert gone.json() == {"detail": "no such part"}
    assert redis_raw.hget(cache_key("catalog.part", part.pk), "t") == b"1"
    assert part.sku not in client.get("/api/parts?limit=100").content.decode()
    assert Part.objects.filter(pk=part.pk).exists()  # still there for staff


def test_unknown_part_is_404(client) -> None:
    assert client.get("/api/parts/999999").status_code == 404
    assert client.get("/api/parts/0").status_code == 422


def test_list_paginates_filters_and_searches(client, make_part) -> None:
    a = make_part(sku="LST-A", name="Hex bolt", quantity=5, reserved=0)
    b = make_part(sku="LST-B", name="Flat washer", quantity=2, reserved=2)
    c = make_part(sku="LST-C", name="Hex nut", quantity=0, reserved=0)
    page = client.get("/api/parts?limit=2&offset=0&q=LST-").json()
    assert (page["count"], page["limit"], page["offset"]) == (3, 2, 0)
    assert [p["sku"] for p in page["items"]] == ["LST-A", "LST-B"]
    assert [p["sku"] for p in client.get("/api/parts?offset=2&q=lst-").json()["items"]] == ["LST-C"]
    assert [p["id"] for p in client.get("/api/parts?q=hex").json()["items"]] == [a.pk, c.pk]
    assert [p["id"] for p in client.get("/api/parts?q=lst&in_stock=true").json()["items"]] == [a.pk]
    assert [p["id"] for p in client.get("/api/parts?q=lst&in_stock=false").json()["items"]] == [
        b.pk,
        c.pk,
    ]
    listed = client.get("/api/parts?q=LST-")
    assert (
        client.get("/api/parts?q=LST-", headers={"if-none-match": listed["ETag"]}).status_code
        == 304
    )
    assert client.get("/api/parts?limit=0").status_code == 422


def test_the_postgresql_only_path_answers_the_same(client, make_part, settings) -> None:
    part = make_part(sku="PGO-1")
    cached_detail = _detail(client, part).json()
    cached_page = client.get("/api/parts?q=PGO").json()
    settings.CATALOG_CACHE_READS = False
    assert _detail(client, part).json() == cached_detail
    assert client.get("/api/parts?q=PGO").json() == cached_page
    services.part_soft_delete(part_id=part.pk, expected_version=part.version)
    assert _detail(client, part).status_code == 404


def test_a_part_without_a_stock_level_shows_nothing_in_stock(client) -> None:
    from tests.factories import make_part as legacy_part

    part = legacy_part()  # the sync engine's sample: no StockLevel row
    body = client.get(f"/api/parts/{part.pk}").json()
    assert body["stock"] == {
        "quantity": 0,
        "reserved": 0,
        "available_stock": 0,
        "is_in_stock": False,
        "version": 0,
    }


def test_openapi_document_and_docs_ui_are_public(client) -> None:
    schema = client.get("/api/openapi.json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    for path in (
        "/api/parts",
        "/api/parts/{part_id}",
        "/api/events",
        "/api/staff/parts/{part_id}/stock",
        "/api/staff/parts/{part_id}/content",
        "/api/staff/parts/{part_id}/rollback/{number}",
    ):
        assert path in paths
    assert client.get("/api/docs").status_code == 200


def test_every_response_carries_a_request_id(client) -> None:
    response = client.get("/api/parts", headers={"x-request-id": "abc-123"})
    assert response["X-Request-ID"] == "abc-123"
    generated = client.get("/api/parts", headers={"x-request-id": "bad id <script>"})
    assert len(generated["X-Request-ID"]) == 32

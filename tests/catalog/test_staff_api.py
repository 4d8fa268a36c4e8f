"""Staff writes: roles, CSRF, versions required, 409 on a concurrent change, validation and
sanitising, content versions, rollback, soft delete, and the change log."""

from __future__ import annotations

import pytest
from django.test import Client

from catalog import services
from catalog.models import CatalogChange, Part, PartContentVersion, StockLevel

pytestmark = pytest.mark.django_db


def _json(client: Client, method: str, url: str, body: dict | None = None, **headers):
    return getattr(client, method)(
        url, body or {}, content_type="application/json", headers=headers
    )


def _stock_url(part: Part) -> str:
    return f"/api/staff/parts/{part.pk}/stock"


def _stock_version(part: Part) -> int:
    return StockLevel.objects.get(pk=part.pk).version


def test_anonymous_gets_401_and_a_viewer_403_on_writes(make_part, viewer_client) -> None:
    part = make_part()
    anonymous = _json(Client(), "put", _stock_url(part), {"quantity": 1, "version": 1})
    assert anonymous.status_code in (401, 403)
    assert "detail" in anonymous.json()
    assert Client().get(f"/api/staff/parts/{part.pk}").status_code == 401
    forbidden = _json(viewer_client, "put", _stock_url(part), {"quantity": 1, "version": 1})
    assert forbidden.status_code == 403
    assert forbidden.json() == {"detail": "the Console operator role is required"}
    assert viewer_client.get(f"/api/staff/parts/{part.pk}").status_code == 200


def test_writes_need_the_csrf_token_of_the_session(make_part, operator_client) -> None:
    part = make_part()
    strict = Client(enforce_csrf_checks=True)
    strict.cookies = operator_client.cookies
    response = _json(
        strict, "put", _stock_url(part), {"quantity": 1}, if_match=str(_stock_version(part))
    )
    assert response.status_code == 403


def test_stock_update_with_if_match_then_409_with_the_current_version(
    make_part, operator_client
) -> None:
    part = make_part(quantity=10, reserved=0)
    seen = _stock_version(part)
    ok = _json(operator_client, "put", _stock_url(part), {"quantity": 9}, if_match=f'"{seen}"')
    assert ok.status_code == 200
    assert ok.json()["stock"]["quantity"] == 9
    current = _stock_version(part)
    assert ok["ETag"] == f'"{current}"'
    stale = _json(operator_client, "put", _stock_url(part), {"quantity": 8}, if_match=f'W/"{seen}"')
    assert stale.status_code == 409
    assert stale.json()["current_version"] == current
    by_body = _json(operator_client, "put", _stock_url(part), {"quantity": 8, "version": current})
    assert by_body.status_code == 200
    assert StockLevel.objects.get(pk=part.pk).quantity == 8
    change = CatalogChange.objects.filter(part=part, action="stock").first()
    assert change.changes == {"quantity": [9, 8]}
    assert change.username == "catalog-operator"
    assert change.ip == "127.0.0.1"
    assert len(change.request_id) == 32


def test_a_write_without_a_version_is_428(make_part, operator_client) -> None:
    part = make_part()
    response = _json(operator_client, "put", _stock_url(part), {"quantity": 1})
    assert response.status_code == 428
    assert "If-Match" in response.json()["detail"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"quantity": -1}, "quantity"),
        ({"quantity": 1, "reserved": 2}, "reserved"),
        ({"quantity": "many"}, "quantity"),
    ],
)
def test_invalid_stock_is_422_naming_the_field(make_part, operator_client, body, field) -> None:
    part = make_part()
    response = _json(operator_client, "put", _stock_url(part), {**body, "version": 1})
    assert response.status_code == 422
    assert [e["loc"][-1] for e in response.json()["detail"]] == [field]


def test_unknown_part_is_404_for_staff(operator_client, viewer_client) -> None:
    assert (
        _json(
            operator_client, "put", "/api/staff/parts/987654/stock", {"quantity": 1, "version": 1}
        ).status_code
        == 404
    )
    assert viewer_client.get("/api/staff/parts/987654").status_code == 404
    assert viewer_client.get("/api/staff/parts/987654/versions").status_code == 404


def test_content_update_creates_a_version_and_sanitises(make_part, operator_client) -> None:
    part = make_part()
    url = f"/api/staff/parts/{part.pk}/content"
    response = _json(
        operator_client,
        "patch",
        url,
        {
            "name": "  Hex bolt M6  ",
            "description": '<p onclick="x()">Zinc <b>plated</b><script>alert(1)</script></p>',
            "specifications": {"length_mm": 30, "coated": True, "finish": "zinc"},
            "images": ["https://img.example.com/a.jpg", "/static/catalog/parts/bolt.svg"],
        },
        if_match=str(part.version),
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["images"] == ["https://img.example.com/a.jpg", "/static/catalog/parts/bolt.svg"]
    assert body["name"] == "Hex bolt M6"
    assert body["description"] == "<p>Zinc <b>plated</b></p>"
    assert body["content_version"] == 2
    part.refresh_from_db()
    assert body["version"] == part.version
    assert PartContentVersion.objects.get(part=part, number=2).snapshot["name"] == "Hex bolt M6"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "<b>bold</b>"}, "name"),
        ({"name": "   "}, "name"),
        ({"specifications": {"x": "<img src=x onerror=alert(1)>"}}, "specifications"),
        ({"specifications": {" ": "blank name"}}, "specifications"),
        ({"specifications": {"long": "x" * 501}}, "specifications"),
        ({"images": ["javascript:alert(1)"]}, "images"),
        ({"images": ["https://ok.example.com/a b.jpg"]}, "images"),
        ({"images": ["//elsewhere.example.com/a.jpg"]}, "images"),
        ({"images": ["/static\\..\\a.jpg"]}, "images"),
        ({"images": ["static/a.jpg"]}, "images"),
    ],
)
def test_html_and_bad_urls_are_refused_with_422(make_part, operator_client, body, field) -> None:
    part = make_part()
    response = _json(
        operator_client,
        "patch",
        f"/api/staff/parts/{part.pk}/content",
        {**body, "version": part.version},
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][-1] == field


def test_rollback_restores_the_snapshot_as_a_new_version_with_who_and_where(
    make_part, operator_client
) -> None:
    part = make_part(name="Original")
    v1 = part.content()
    services.part_update_content(
        part_id=part.pk,
        expected_version=part.version,
        content={"name": "Changed", "specifications": {}},
    )
    part.refresh_from_db()
    response = _json(
        operator_client,
        "post",
        f"/api/staff/parts/{part.pk}/rollback/1",
        if_match=str(part.version),
        x_request_id="rollback-req-1",
    )
    assert response.status_code == 200, response.content
    part.refresh_from_db()
    assert part.content() == v1
    latest = PartContentVersion.objects.filter(part=part).order_by("-number").first()
    assert (latest.number, latest.rolled_back_from, latest.snapshot) == (3, 1, v1)
    change = CatalogChange.objects.filter(part=part).first()
    assert change.action == "rollback"
    assert change.changes["name"] == ["Changed", "Original"]
    assert (change.username, change.ip, change.request_id) == (
        "catalog-operator",
        "127.0.0.1",
        "rollback-req-1",
    )
    assert change.version == part.version
    missing = _json(
        operator_client,
        "post",
        f"/api/staff/parts/{part.pk}/rollback/99",
        {"version": part.version},
    )
    assert missing.status_code == 404
    stale = _json(
        operator_client,
        "post",
        f"/api/staff/parts/{part.pk}/rollback/1",
        {"version": part.version - 1},
    )
    assert stale.status_code == 409


def test_soft_delete_and_restore(make_part, operator_client, viewer_client) -> None:
    part = make_part()
    deleted = _json(
        operator_client, "delete", f"/api/staff/parts/{part.pk}", if_match=str(part.version)
    )
    assert deleted.status_code == 200
    assert deleted.json()["deleted_at"] is not None
    assert viewer_client.get(f"/api/staff/parts/{part.pk}").json()["deleted_at"] is not None
    version = deleted.json()["version"]
    assert (
        _json(
            operator_client,
            "put",
            _stock_url(part),
            {"quantity": 1, "version": _stock_version(part)},
        ).status_code
        == 404
    )
    assert (
        _json(
            operator_client,
            "patch",
            f"/api/staff/parts/{part.pk}/content",
            {"name": "x", "version": version},
        ).status_code
        == 404
    )
    restored = _json(
        operator_client, "post", f"/api/staff/parts/{part.pk}/restore", {"version": version}
    )
    assert restored.status_code == 200
    assert restored.json()["deleted_at"] is None
    actions = list(CatalogChange.objects.filter(part=part).values_list("action", flat=True))
    assert actions[:2] == ["restore", "delete"]


def test_versions_and_change_log_endpoints(make_part, viewer_client) -> None:
    part = make_part()
    services.part_update_content(
        part_id=part.pk, expected_version=part.version, content={"description": "New"}
    )
    versions = viewer_client.get(f"/api/staff/parts/{part.pk}/versions").json()
    assert [v["number"] for v in versions] == [2, 1]
    assert versions[0]["snapshot"]["description"] == "New"
    changes = viewer_client.get(f"/api/staff/parts/{part.pk}/changes").json()
    assert [c["action"] for c in changes] == ["content", "create"]
    assert changes[0]["changes"] == {"description": ["<p>A part</p>", "New"]}


def test_a_legacy_part_gets_its_current_content_as_v1_on_first_edit(db) -> None:
    from tests.factories import make_part as legacy_part

    part = legacy_part(name="Legacy")
    services.part_update_content(
        part_id=part.pk, expected_version=part.version, content={"name": "Edited"}
    )
    numbers = {v.number: v.snapshot["name"] for v in part.content_versions.all()}
    assert numbers == {1: "Legacy", 2: "Edited"}
    with pytest.raises(ValueError, match="not content fields"):
        services.part_update_content(part_id=part.pk, expected_version=1, content={"sku": "x"})

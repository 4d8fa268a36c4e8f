"""The console API on django-ninja: its OpenAPI document (viewers only), bodies its schemas
refuse (400 with ``fields``, never ninja's 422), and the error envelope every API under
/api/ shares (``sync.access.api``)."""

from __future__ import annotations

import json

import pytest
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import Http404
from django.test import Client, RequestFactory
from ninja.errors import HttpError

from catalog.api import api as catalog_api
from sync.console.api import api as console_api
from sync.models import StaffAction, SyncConfig, SyncRun
from tests.console.sources import ensure_roles, sources_file

pytestmark = pytest.mark.django_db
API = "/api/sync/"


@pytest.fixture(autouse=True)
def _sources(settings, tmp_path) -> None:
    ensure_roles()
    settings.SYNC_INGEST_SOURCES_FILE = str(sources_file(tmp_path))


def test_the_openapi_document_is_for_viewers(client_for, plain_staff) -> None:
    anonymous = client_for("anonymous").get(API + "openapi.json")
    assert anonymous.status_code == 401
    assert "log in" in anonymous.json()["error"]
    staff = Client()
    staff.force_login(plain_staff)
    assert staff.get(API + "openapi.json").status_code == 403
    viewer = client_for("viewer")
    document = viewer.get(API + "openapi.json").json()
    assert document["info"]["title"] == "syncops console API"
    assert set(document["paths"]) == {
        "/api/sync/manual",
        "/api/sync/status",
        "/api/sync/progress/{run_id}",
        "/api/sync/cancel/{run_id}",
        "/api/sync/config",
        "/api/sync/dashboard",
        "/api/sync/alerts/{alert_id}/acknowledge",
    }
    manual = document["paths"]["/api/sync/manual"]["post"]
    assert {"202", "400", "401", "403", "409", "413", "429", "503"} <= set(manual["responses"])
    config = document["paths"]["/api/sync/config"]["put"]
    body = config["requestBody"]["content"]["application/json"]["schema"]
    schema = document["components"]["schemas"][body["$ref"].rsplit("/", 1)[-1]]
    assert schema["required"] == ["source"]
    assert {"batch_size", "recipients", "retention_days"} <= set(schema["properties"])
    assert viewer.get(API + "docs").status_code == 200
    refused = viewer.post(API + "openapi.json")
    assert refused.status_code == 405
    assert refused.json()["error"].startswith("method POST")
    # The catalog's document stays public and lists none of the console's operations.
    public = Client().get("/api/openapi.json").json()
    assert not [p for p in public["paths"] if p.startswith("/api/sync/")]


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"source": "b" * 101}, "source", "at most 100 characters"),
        ({"source": "buyers", "batch_size": [5]}, "batch_size", "a boolean, a finite number"),
        ({"source": "buyers", "colour": {"a": 1}}, "colour", "a boolean, a finite number"),
        ({"source": "buyers", "recipients": "x" * 10_001}, "recipients", "at most 10000"),
    ],
)
def test_a_body_the_schema_refuses_is_a_400_naming_the_field(
    client_for, body, field, message
) -> None:
    response = client_for("operator").put(
        API + "config", json.dumps(body), content_type="application/json"
    )
    assert response.status_code == 400
    answer = response.json()
    assert list(answer["fields"]) == [field]
    assert message in answer["fields"][field][0]
    assert answer["error"].startswith(f"{field}: ")
    assert not StaffAction.objects.exists()


def test_answers_are_never_cached(client_for) -> None:
    response = client_for("viewer").get(API + "status")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert "no-store" in response["Cache-Control"]


def test_an_empty_body_and_a_long_query_are_400s(client_for) -> None:
    operator = client_for("operator")
    empty = operator.post(API + "manual", b"", content_type="application/json")
    assert (empty.status_code, empty.json()) == (400, {"error": "the body must be a JSON object"})
    long = operator.get(API + "config", {"source": "s" * 101})
    assert long.status_code == 400
    assert list(long.json()["fields"]) == ["source"]
    assert not SyncRun.objects.exists()


def test_a_setting_sent_as_null_reaches_the_service(client_for) -> None:
    response = client_for("operator").put(
        API + "config",
        json.dumps({"source": "buyers", "batch_size": None}),
        content_type="application/json",
    )
    assert response.status_code == 400
    assert list(response.json()["fields"]) == ["batch_size"]
    assert SyncConfig.objects.get(source="buyers").version == 1


@pytest.mark.parametrize(
    ("api", "key"), [(console_api, "error"), (catalog_api, "detail")], ids=["console", "catalog"]
)
def test_both_apis_answer_in_their_own_envelope(api, key, caplog) -> None:
    request = RequestFactory().get("/api/whatever")
    too_big = api.on_exception(request, RequestDataTooBig())
    assert too_big.status_code == 413
    assert "too large" in json.loads(too_big.content)[key]
    suspicious = api.on_exception(request, SuspiciousOperation())
    assert suspicious.status_code == 400
    assert json.loads(suspicious.content) == {key: "bad request (SuspiciousOperation)"}
    bug = api.on_exception(request, RuntimeError("boom"))
    assert bug.status_code == 500
    assert "boom" not in bug.content.decode()
    assert "unexpected RuntimeError on GET /api/whatever" in caplog.text


def test_the_console_api_errors_ninja_raises() -> None:
    request = RequestFactory().get("/api/sync/status")
    teapot = console_api.on_exception(request, HttpError(418, "short and stout"))
    assert (teapot.status_code, json.loads(teapot.content)) == (418, {"error": "short and stout"})
    missing = console_api.on_exception(request, Http404())
    assert (missing.status_code, json.loads(missing.content)) == (404, {"error": "not found"})


@pytest.mark.parametrize(
    ("method", "url", "key"),
    [("put", "/api/staff/parts/1/stock", "detail"), ("post", API + "manual", "error")],
    ids=["catalog", "console"],
)
def test_a_csrf_refusal_says_why_in_each_apis_envelope(client_for, method, url, key) -> None:
    operator = client_for("operator", enforce_csrf_checks=True)
    response = getattr(operator, method)(url, "{}", content_type="application/json")
    assert response.status_code == 403
    assert response.json()[key].startswith("CSRF verification failed: ")
    assert not SyncRun.objects.exists()

"""Hostile input to both APIs, generated (hypothesis): no 5xx.

NUL bytes and unpaired surrogates in every string, keys and query values included; wrong
JSON types for every field; bodies that are not JSON, not UTF-8 or above the size limit; junk
``If-Match`` / ``If-None-Match`` / ``Last-Event-ID`` headers. Every answer is JSON below 500,
and a refused write leaves the row as it was. (tests/catalog/test_schema.py runs schemathesis
over the OpenAPI document; tests/fuzz/test_console_api.py fuzzes the console API's shapes.)
"""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from catalog.models import Part, PartContentVersion, StockLevel
from sync.ingest.source_settings import config_ensure
from sync.models import SyncConfig
from tests.catalog.conftest import new_part
from tests.console.conftest import make_staff_user

pytestmark = pytest.mark.django_db
HUGE = 3 * 1024 * 1024

nasty_text = st.one_of(
    st.text(max_size=20),
    st.text(
        alphabet=st.sampled_from(["\x00", "\ud800", "\udfff", "a", "<", "é", "😀", "\n"]),
        max_size=12,
    ),
    st.sampled_from(["\x00", "valve\x00", "\ud83d", "%00", "' OR 1=1 --", "\\", "NaN"]),
)
scalar = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(-(2**80), 2**80), st.floats(), nasty_text
)
value = st.recursive(
    scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(nasty_text, inner, max_size=3)
    ),
    max_leaves=8,
)
FIELDS = [
    "quantity",
    "reserved",
    "version",
    "name",
    "description",
    "specifications",
    "images",
    "source",
    "batch_size",
    "recipients",
    "enabled",
    "interval_seconds",
]
objects = st.dictionaries(st.one_of(st.sampled_from(FIELDS), nasty_text), value, max_size=5)


def _encode(body: object) -> bytes:
    # NOTE: surrogates cannot be UTF-8: json.dumps escapes them (\ud800), as a client would.
    return json.dumps(body).encode()


bodies = st.one_of(
    objects.map(_encode),
    st.sampled_from(
        [
            b"",
            b"{",
            b"null",
            b"[]",
            b"\xff\xfe",
            b'{"quantity": NaN}',
            b'{"quantity": 1e400}',
            b"[" * 50_000,
            b'{"name": "\\u0000"}',
            b'{"name": "\\ud800"}',
            b'{"specifications": {"\\u0000": 1}}',
            b'{"quantity": ' + b"9" * 5000 + b"}",
        ]
    ),
    st.binary(max_size=40),
    st.just(b'{"name": "' + b"x" * HUGE + b'"}'),
)
headers = st.one_of(
    st.none(),
    nasty_text.filter(lambda t: "\n" not in t),
    st.sampled_from(['"1"', '"²"', '"' + "9" * 30 + '"', "*", 'W/"3"']),
)
FUZZ = settings(
    max_examples=120,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _header_value(text: str | None) -> dict[str, str]:
    # WSGI carries header values as latin-1 text: what cannot be sent is no request at all
    if text is None or not text.isprintable() or not text.isascii():
        return {}
    return {"HTTP_IF_MATCH": text, "HTTP_IF_NONE_MATCH": text, "HTTP_LAST_EVENT_ID": text}


def _assert_json_below_500(response) -> None:
    assert response.status_code < 500, (response.status_code, response.content[:300])
    if response.status_code >= 400:
        assert response["Content-Type"].startswith("application/json"), response.content[:200]
        json.loads(response.content)


@pytest.fixture
def world() -> dict:
    part = new_part(quantity=5, reserved=0)
    config_ensure()
    operator = Client()
    operator.force_login(
        make_staff_user("operator", username="fuzz-operator"),
        backend="django.contrib.auth.backends.ModelBackend",
    )
    return {"part": part, "operator": operator, "anonymous": Client()}


def _snapshot(part_id: int) -> tuple:
    return (
        Part.objects.filter(pk=part_id).values_list("version", flat=True).first(),
        StockLevel.objects.get(pk=part_id).version,
        PartContentVersion.objects.filter(part_id=part_id).count(),
        sorted(SyncConfig.objects.values_list("source", "version")),
    )


@FUZZ
@given(
    method=st.sampled_from(["put", "patch", "post", "delete"]),
    target=st.sampled_from(["stock", "content", "rollback/1", "", "restore"]),
    data=bodies,
    header=headers,
    who=st.sampled_from(["operator", "anonymous"]),
)
def test_staff_catalog_writes_never_5xx_and_a_refusal_changes_nothing(
    world, method, target, data, header, who
) -> None:
    part = world["part"]
    url = f"/api/staff/parts/{part.pk}/{target}".rstrip("/")
    before = _snapshot(part.pk)
    response = getattr(world[who], method)(
        url, data, content_type="application/json", **_header_value(header)
    )
    _assert_json_below_500(response)
    if response.status_code >= 400:
        assert _snapshot(part.pk) == before


@FUZZ
@given(
    params=st.dictionaries(
        st.sampled_from(["q", "limit", "offset", "in_stock", "part", "last_event_id", "x"]),
        st.one_of(nasty_text, st.integers().map(str)),
        max_size=4,
    ),
    path=st.sampled_from(["/api/parts", "/api/parts/{id}", "/api/events"]),
    header=headers,
)
def test_public_reads_never_5xx(world, params, path, header) -> None:
    if path == "/api/events" and not (params.get("last_event_id") or header):
        return  # a valid stream holds the client open (tests/catalog/test_sse.py)
    url = path.replace("{id}", str(world["part"].pk))
    if path == "/api/events":
        params = {**params, "last_event_id": params.get("last_event_id") or "bad id"}
    # the raw bytes a client would send: surrogates as their (invalid) UTF-8, percent-encoded
    query = urlencode(params, encoding="utf-8", errors="surrogatepass")
    response = world["anonymous"].get(f"{url}?{query}", **_header_value(header))
    if path == "/api/events" and response.status_code == 200:
        response.close()  # a valid id: the stream itself is test_sse.py's
        return
    _assert_json_below_500(response)


@FUZZ
@given(
    method=st.sampled_from(["get", "put", "post"]),
    path=st.sampled_from(["config", "manual", "status", "cancel/1", "alerts/1/acknowledge"]),
    data=bodies,
    source=st.one_of(st.none(), nasty_text),
)
def test_console_api_never_5xx_and_a_refusal_changes_nothing(
    world, method, path, data, source
) -> None:
    before = _snapshot(world["part"].pk)
    client, url = world["operator"], f"/api/sync/{path}"
    if method == "get":
        query = "" if source is None else urlencode({"source": source}, errors="surrogatepass")
        response = client.get(f"{url}?{query}")
    else:
        response = getattr(client, method)(url, data, content_type="application/json")
    assert response.status_code < 500, (response.status_code, response.content[:300])
    assert response["Content-Type"].startswith("application/json")
    if response.status_code >= 400:
        assert "error" in response.json()
        assert _snapshot(world["part"].pk) == before

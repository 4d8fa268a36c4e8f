"""Bodies the API guard met only by their ``Content-Length`` (a black-box pass).

* A POST whose ``Content-Type`` says form data while the body is JSON (or junk): Django's
  CSRF check parses it as a form and consumed the stream, and the view's ``request.body``
  raised ``RawPostDataException``: a 500 on every POST endpoint of both APIs.
* A body sent chunked (no ``Content-Length``, as uvicorn passes it on) over
  ``DATA_UPLOAD_MAX_MEMORY_SIZE``: the console API answered a bare 400, not the 413.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings
from django.core.handlers.asgi import ASGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.test import Client

from catalog.models import StockLevel
from sync.models import SyncRun
from tests.catalog.conftest import new_part
from tests.console.conftest import make_staff_user

pytestmark = pytest.mark.django_db
FORM_TYPES = ["multipart/form-data; boundary=x", "application/x-www-form-urlencoded"]


def _csrf_client(role: str) -> Client:
    client = Client(enforce_csrf_checks=True)  # the check that parses the form
    client.force_login(
        make_staff_user(role, username=f"body-{role}"),
        backend="django.contrib.auth.backends.ModelBackend",
    )
    client.cookies["csrftoken"] = "c" * 32
    return client


@pytest.mark.parametrize("content_type", FORM_TYPES)
@pytest.mark.parametrize("body", [b'{"source": "no-such-source"}', b"[" * 5000, b"\xff\xfe"])
def test_a_post_labelled_as_a_form_is_a_json_4xx_on_every_post_endpoint(content_type, body):
    part = new_part(quantity=5)
    client = _csrf_client("operator")
    for url in (
        "/api/sync/manual",
        "/api/sync/cancel/999999",
        "/api/sync/alerts/999999/acknowledge",
        f"/api/staff/parts/{part.pk}/restore",
        f"/api/staff/parts/{part.pk}/rollback/1",
    ):
        response = client.post(url, body, content_type=content_type, HTTP_X_CSRFTOKEN="c" * 32)
        assert 400 <= response.status_code < 500, (url, response.status_code)
        assert response["Content-Type"].startswith("application/json"), url
    assert not SyncRun.objects.exists()
    assert StockLevel.objects.get(pk=part.pk).quantity == 5


def _asgi_chunked(path: str, method: str, chunks: list[bytes], cookies: str) -> tuple[int, dict]:
    """One request through Django's ASGI handler with a chunked body: no Content-Length."""
    messages = [{"type": "http.request", "body": chunk, "more_body": True} for chunk in chunks]
    messages.append({"type": "http.request", "body": b"", "more_body": False})
    sent: list[dict] = []

    async def receive() -> dict:
        if messages:
            return messages.pop(0)
        await asyncio.Event().wait()  # the client stays connected until the answer
        return {"type": "http.disconnect"}  # pragma: no cover

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 40000),
        "headers": [
            (b"host", b"testserver"),
            (b"content-type", b"application/json"),
            (b"cookie", cookies.encode()),
            (b"x-csrftoken", b"c" * 32),
            (b"transfer-encoding", b"chunked"),
        ],
    }
    # As Django's own test clients do: the handler would close the test's connection.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        async_to_sync(ASGIHandler())(scope, receive, send)
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], json.loads(body)


def test_a_chunked_body_over_the_limit_is_a_json_413_on_both_apis():
    part = new_part(quantity=5)
    client = _csrf_client("operator")
    cookies = "; ".join(f"{name}={morsel.value}" for name, morsel in client.cookies.items())
    pad = b" " * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE // 10 + 1)
    chunks = [b'{"source": "buyers", "batch_size": 5', *([pad] * 11), b"}"]
    for method, path, key in (
        ("PUT", "/api/sync/config", "error"),
        ("POST", "/api/sync/manual", "error"),
        ("PUT", f"/api/staff/parts/{part.pk}/stock", "detail"),
    ):
        status, body = _asgi_chunked(path, method, chunks, cookies)
        assert status == 413, (path, status, body)
        assert "too large" in body[key]
    assert not SyncRun.objects.exists()
    assert StockLevel.objects.get(pk=part.pk).quantity == 5

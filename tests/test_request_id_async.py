"""The request id under ASGI: the middleware runs as a coroutine there (uvicorn serves the SSE
clients), and a request answered on that path carries an id just as under WSGI."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from django.test import AsyncClient

from sync.access.request_id import HEADER

pytestmark = pytest.mark.django_db(transaction=True)


def _get(path: str, **headers: str):
    return async_to_sync(AsyncClient().get)(path, headers=headers)


def test_an_asgi_request_gets_a_new_id_or_keeps_a_sane_one() -> None:
    fresh = _get("/favicon.ico")
    assert fresh.status_code == 200 and len(fresh[HEADER]) == 32  # a new uuid4, hex
    kept = _get("/favicon.ico", **{HEADER: "edge-1234.abc"})
    assert kept[HEADER] == "edge-1234.abc"
    refused = _get("/favicon.ico", **{HEADER: "bad id; with spaces"})
    assert refused[HEADER] != "bad id; with spaces" and len(refused[HEADER]) == 32

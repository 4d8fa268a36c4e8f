"""OpenTelemetry: off by default; on, a staff stock update is one trace that spans the request,
its statements and COMMIT, the write-through to Redis and the change event (the SDK's
in-memory exporter, real PostgreSQL and Redis, a real commit)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from catalog.models import StockLevel
from config.tracing import configure_tracing, unconfigure_tracing
from sync.access import roles
from tests.catalog.conftest import new_part, user_with


@pytest.fixture
def spans():
    exporter = InMemorySpanExporter()
    provider = configure_tracing(exporter=exporter)
    assert provider is not None
    connection.close()  # the next connection is made through the instrumented psycopg
    try:
        yield exporter
    finally:
        unconfigure_tracing()
        provider.shutdown()
        connection.close()


def test_tracing_is_off_without_an_endpoint(settings) -> None:
    settings.TRACING_OTLP_ENDPOINT = ""
    assert configure_tracing() is None


def test_an_endpoint_turns_on_the_otlp_exporter(settings) -> None:
    settings.TRACING_OTLP_ENDPOINT = "http://127.0.0.1:9/v1/traces"  # nothing listens
    provider = configure_tracing()
    try:
        assert provider is not None
        assert configure_tracing() is None  # once per process
    finally:
        unconfigure_tracing()
        provider.shutdown()


@pytest.mark.django_db(transaction=True)
def test_a_staff_stock_update_is_one_trace_from_request_to_event(spans) -> None:
    part = new_part()
    client = Client()
    client.force_login(user_with(roles.OPERATOR, "trace-operator"))
    version = StockLevel.objects.get(part=part).version
    spans.clear()
    response = client.put(
        f"/api/staff/parts/{part.pk}/stock",
        {"quantity": 3},
        content_type="application/json",
        headers={"if-match": str(version)},
    )
    assert response.status_code == 200

    finished = spans.get_finished_spans()
    (request,) = [s for s in finished if s.kind == SpanKind.SERVER]
    assert request.name == "PUT api/staff/parts/<part_id>/stock"
    trace = [s for s in finished if s.context.trace_id == request.context.trace_id]
    by_name = {}
    for span in trace:
        by_name.setdefault(span.name, span)
    update, commit = by_name["UPDATE"], by_name["COMMIT"]
    write = by_name["sync.cache.write"]
    assert "catalog_stock_levels" in update.attributes["db.statement"]
    # In order: the statement, its commit, then (on commit) the write-through, whose one round
    # trip also carries the change event.
    assert update.start_time < commit.start_time < write.start_time
    for span in (update, commit, write):
        assert span.parent.span_id == request.context.span_id
    assert write.attributes["sync.cache.keys"] == 1
    assert write.attributes["sync.cache.events"] == 1

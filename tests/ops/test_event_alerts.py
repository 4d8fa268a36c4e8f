"""The event system's alerts: ``event_latency`` when a live SSE process's commit-to-delivery
p99 reaches ``SYNC_EVENTS_LATENCY_ALERT_MS`` (here: a real delivery that an outage of the
cache Redis delayed), ``event_lag`` when a reader with clients is
``SYNC_EVENTS_LAG_ALERT_SECONDS`` behind; each closed once its figure has recovered. And the
records they read: stale ones ignored, old or unreadable ones deleted."""

from __future__ import annotations

import json
import time
from dataclasses import replace

import pytest

from sync.cache import connection, events
from sync.models import SyncAlert, SyncConfig, SyncIntent
from sync.ops import event_stats
from sync.ops.checks import ops_check
from sync.ops.metrics import render_metrics
from sync.ops.rules import evaluate_events
from tests import engine_fixtures
from tests.catalog.conftest import new_part
from tests.catalog.test_sse import Events, _set_stock, _stream, asgi  # noqa: F401 - a fixture
from tests.waiting import wait_until

pytestmark = pytest.mark.django_db(transaction=True)
# The engine's shared fixtures (tests/engine_fixtures.py): fresh_engine_state is autouse.
fresh_engine_state = engine_fixtures.fresh_engine_state
redis_raw = engine_fixtures.redis_raw
Type = SyncAlert.Type


def _open(alert_type: str) -> SyncAlert | None:
    return SyncAlert.objects.filter(alert_type=alert_type, acknowledged_at__isnull=True).first()


@pytest.fixture
def fast_reports(monkeypatch) -> None:
    """The SSE server started after this reports every 0.1 s."""
    monkeypatch.setenv("SYNC_EVENTS_STATS_INTERVAL", "0.1")


@pytest.mark.slow
def test_a_delivery_delayed_by_an_outage_raises_event_latency_and_recovery_closes_it(
    redis_control,
    fast_reports,
    asgi,  # noqa: F811 - the fixture imported above
    settings,
) -> None:
    part = new_part(quantity=5, reserved=0)
    with _stream(asgi, part=part.pk) as response:
        stream = Events(response)
        stream.next()
        wait_until(
            lambda: any(p.clients == 1 for p in event_stats.read_processes()),
            what="the client subscribed",
        )
        redis_control.pause()  # the write-through of the next commit times out
        try:
            _set_stock(part.pk, 4)
            # NOTE: nothing reaches the client before the cache Redis runs again: either the
            # resumed server runs the timed-out write-through's buffered commands (the change
            # event rides in the same round trip, stamped with the commit), or replay delivers
            # it later (stamped with the intent's created_at). Both are delayed by the outage.
            paused_until = events.now_ms()
        finally:
            redis_control.resume()
        connection.reset_clients()  # this process's breaker opened; Redis is back
        intent = SyncIntent.objects.get(model="catalog.stocklevel", object_pk=str(part.pk))
        committed = int(intent.created_at.timestamp() * 1000)

        from sync.cache.replay import replay_pending

        replay_pending(include_not_due=True)
        frame = json.loads(stream.next()["data"])
        assert frame["data"]["quantity"] == 4
        assert committed <= frame["committed_at"] <= paused_until
        delayed_by = paused_until - frame["committed_at"]  # at least: delivered after that
        record = wait_until(
            lambda: next((p for p in event_stats.read_processes() if p.samples), None),
            what="the delivery in the record",
        )
        assert record.p99_ms >= delayed_by

        settings.SYNC_EVENTS_LATENCY_ALERT_MS = delayed_by
        ops_check()  # the engine's rules run in the periodic ops check
        alert = _open(Type.EVENT_LATENCY)
        assert alert is not None
        assert alert.source == SyncConfig.ENGINE
        assert record.process in alert.message
        assert alert.context["processes"][record.process]["p99_ms"] == record.p99_ms

        settings.SYNC_EVENTS_LATENCY_ALERT_MS = record.p99_ms + 1  # the figure is below it now
        ops_check()
        assert _open(Type.EVENT_LATENCY) is None
        assert SyncAlert.objects.get(pk=alert.pk).acknowledged_at is not None  # closed


def _write(figures: event_stats.ProcessFigures) -> None:
    connection.run(
        lambda client: client.hset(
            event_stats.stats_key(), figures.process, event_stats.encode_record(figures)
        )
    )


RECORD = event_stats.ProcessFigures(
    process="web-1:4242",
    clients=3,
    delivered=10,
    rate=0.5,
    samples=10,
    p50_ms=4.0,
    p99_ms=9.0,
    stream="catalog",
    position="1-0",
    lag_seconds=0.0,
    updated_at=0.0,
)


def test_a_reader_behind_the_stream_raises_event_lag_until_it_catches_up(settings) -> None:
    settings.SYNC_EVENTS_LAG_ALERT_SECONDS = 30
    _write(replace(RECORD, lag_seconds=45.0, updated_at=time.time()))
    (alert,) = evaluate_events()
    assert alert.alert_type == Type.EVENT_LAG
    assert "web-1:4242 is 45 s behind the catalog stream" in alert.message
    # A process without clients is not reading: its lag says nothing.
    _write(replace(RECORD, clients=0, lag_seconds=45.0, updated_at=time.time()))
    assert evaluate_events() == []
    assert _open(Type.EVENT_LAG) is None
    _write(replace(RECORD, lag_seconds=50.0, updated_at=time.time()))
    evaluate_events()
    _write(replace(RECORD, lag_seconds=0.0, updated_at=time.time()))
    assert evaluate_events() == []
    assert _open(Type.EVENT_LAG) is None


def test_two_slow_processes_are_one_alert_naming_the_worst(settings) -> None:
    settings.SYNC_EVENTS_LATENCY_ALERT_MS = 100
    _write(replace(RECORD, p99_ms=150.0, updated_at=time.time()))
    _write(replace(RECORD, process="web-2:7", p99_ms=900.0, updated_at=time.time()))
    (alert,) = evaluate_events()
    assert "web-2:7" in alert.message
    assert "and 1 other process(es)" in alert.message
    assert set(alert.context["processes"]) == {"web-1:4242", "web-2:7"}


def test_stale_records_are_ignored_and_old_or_broken_ones_deleted(redis_raw) -> None:
    now = time.time()
    _write(replace(RECORD, process="live:1", updated_at=now))
    _write(replace(RECORD, process="stale:2", updated_at=now - event_stats.STALE_AFTER - 1))
    _write(replace(RECORD, process="old:3", updated_at=now - event_stats.FORGET_AFTER - 1))
    redis_raw.hset(event_stats.stats_key(), "broken:4", "{not json")
    redis_raw.hset(event_stats.stats_key(), "alien:5", json.dumps({"process": "x"}))
    assert [p.process for p in event_stats.read_processes(now=now)] == ["live:1"]
    kept = {name.decode() for name in redis_raw.hkeys(event_stats.stats_key())}
    assert kept == {"live:1", "stale:2"}  # the stale one may come back; the rest is gone


def test_without_the_cache_redis_the_rules_and_the_scrape_go_on(redis_control) -> None:
    _write(replace(RECORD, p99_ms=10**6, updated_at=time.time()))
    redis_control.stop()
    assert evaluate_events() == []  # the cache's own checks say Redis is down
    text = render_metrics().decode()
    assert "sync_retry_queue_size" in text  # the rest of the scrape answers
    assert "sync_event_stream_length" not in text


def test_a_scrape_reads_the_streams_and_the_live_processes_from_redis() -> None:
    new_part()  # two entries on the catalog stream
    _write(replace(RECORD, lag_seconds=2.5, updated_at=time.time()))
    _write(replace(RECORD, process="stale:9", lag_seconds=99.0, updated_at=0.0))
    text = render_metrics().decode()
    assert 'sync_event_stream_length{stream="catalog"} 2.0' in text
    assert 'sync_event_stream_oldest_age_seconds{stream="catalog"}' in text
    assert 'sync_event_stream_lag_seconds{process="web-1:4242",stream="catalog"} 2.5' in text
    assert "stale:9" not in text

"""The console's "Event system" page: who may see it, what it shows (the SSE processes'
records, the stream, the open event-system alerts), and the replay tool's checks."""

from __future__ import annotations

import time
from html import unescape

import pytest
from django.test import Client
from django.urls import reverse

from sync.cache import connection, events
from sync.models import SyncAlert, SyncConfig
from sync.ops import event_stats
from sync.ops.alerts import raise_alert
from tests import engine_fixtures
from tests.factories import make_part

# The engine's shared fixtures (tests/engine_fixtures.py): fresh_engine_state is autouse.
fresh_engine_state = engine_fixtures.fresh_engine_state
redis_raw = engine_fixtures.redis_raw

pytestmark = pytest.mark.django_db(transaction=True)  # the write-through runs on commit
URL = "/admin/console/events/"
STREAM = events.stream_key("catalog")


def _record(**overrides) -> None:
    figures = event_stats.ProcessFigures(
        **{
            "process": "web-7:31337",
            "clients": 4,
            "delivered": 1200,
            "rate": 2.5,
            "samples": 150,
            "p50_ms": 12.0,
            "p99_ms": 480.0,
            "stream": "catalog",
            "position": "1733560000000-0",
            "lag_seconds": 0.0,
            "updated_at": time.time(),
            **overrides,
        }
    )
    connection.run(
        lambda client: client.hset(
            event_stats.stats_key(), figures.process, event_stats.encode_record(figures)
        )
    )


def test_the_page_is_for_console_roles_only(client_for, plain_staff) -> None:
    assert reverse("admin:console_events") == URL
    anonymous = client_for("anonymous").get(URL)
    assert anonymous.status_code == 302
    assert anonymous["Location"].startswith("/admin/login/")
    staff = Client()  # staff without a console role
    staff.force_login(plain_staff, backend="django.contrib.auth.backends.ModelBackend")
    assert staff.get(URL).status_code == 403
    assert client_for("viewer").get(URL).status_code == 200


def test_the_dashboard_links_to_it(client_for) -> None:
    page = client_for("viewer").get("/admin/").content.decode()
    assert f'href="{URL}"' in page


def test_a_viewer_sees_processes_totals_the_stream_and_open_alerts(client_for, redis_raw) -> None:
    make_part()  # two entries on the catalog stream (part, stock)
    _record()
    _record(process="web-8:1", clients=1, rate=0.5, p99_ms=None, p50_ms=None, samples=0)
    _record(process="gone:2", clients=99, updated_at=time.time() - 600)  # stale: left out
    raise_alert(SyncAlert.Type.EVENT_LATENCY, SyncConfig.ENGINE, "p99 480 ms on web-7:31337")
    raise_alert(SyncAlert.Type.RETRY_QUEUE_SIZE, SyncConfig.ENGINE, "not an event alert")
    response = client_for("viewer").get(URL)
    page = unescape(response.content.decode())
    assert 'data-process="web-7:31337"' in page
    assert 'data-process="web-8:1"' in page
    assert "gone:2" not in page
    assert '<div class="figure" id="total-clients">5</div>' in page
    assert "3 events/s" in page  # 2.5 + 0.5
    assert '<div class="figure" id="total-p99">480 ms</div>' in page
    ((oldest, _),) = redis_raw.xrange(STREAM, count=1)
    ((newest, _),) = redis_raw.xrevrange(STREAM, count=1)
    assert f"<code>{oldest.decode()}</code>" in page
    assert f"<code>{newest.decode()}</code>" in page
    assert f'data-field="length">{redis_raw.xlen(STREAM)}<' in page
    assert f"~{events.MAXLEN:,}" in page
    assert "p99 480 ms on web-7:31337" in page
    assert "not an event alert" not in page
    # The CSP holds: no inline style, no inline script.
    assert "style=" not in page
    assert "<script>" not in page


def test_without_the_cache_redis_the_page_says_so(client_for, redis_control) -> None:
    redis_control.stop()
    response = client_for("viewer").get(URL)
    assert response.status_code == 200
    assert "The cache Redis cannot be read" in response.content.decode()


def _replay(client_for, **query) -> str:
    response = client_for("viewer").get(URL, query)
    assert response.status_code == 200
    return unescape(response.content.decode())


def test_the_replay_tool_opens_a_client_after_a_valid_id(client_for, redis_raw) -> None:
    part = make_part()
    newest = redis_raw.xrevrange(STREAM, count=1)[0][0].decode()
    page = _replay(client_for, last_event_id=newest, parts=f"{part.pk}, 12")
    assert f'data-url="/api/events?last_event_id={newest}&part={part.pk}&part=12"' in page
    assert 'id="replay-warning"' not in page
    assert 'id="replay-errors"' not in page
    # The API's own repeated part= works too.
    page = _replay(client_for, last_event_id=newest, part=[str(part.pk)])
    assert f'last_event_id={newest}&part={part.pk}"' in page


def test_the_replay_tool_refuses_what_is_not_an_id_or_a_part(client_for) -> None:
    page = _replay(client_for, last_event_id="<script>1</script>", parts="3 x")
    assert "The stream id must be <milliseconds>-<sequence>" in page
    assert "Part id 'x' is not a positive whole number." in page
    raw = client_for("viewer").get(URL, {"last_event_id": "<script>1</script>"}).content
    assert b"<script>1" not in raw  # echoed in the form, escaped
    assert 'id="event-replay"' not in page
    page = _replay(client_for, parts="3")
    assert "Give the stream id to replay after." in page
    page = _replay(client_for, last_event_id="1-0", parts=" ".join(["1"] * 60))
    assert "At most 50 part ids." in page
    page = _replay(client_for, last_event_id="1-0", parts="0")
    assert "Part id '0' is not a positive whole number." in page
    assert 'id="replay-id"' in _replay(client_for)  # no form sent: just the form


def test_the_replay_tool_says_when_the_client_will_get_a_reset(client_for, redis_raw) -> None:
    page = _replay(client_for, last_event_id="5-0")
    assert "The stream is empty: the client will get event: reset" in page
    make_part()
    oldest = redis_raw.xrange(STREAM, count=1)[0][0].decode()
    newest = redis_raw.xrevrange(STREAM, count=1)[0][0].decode()
    page = _replay(client_for, last_event_id="1-0")
    assert f"1-0 is older than the oldest replayable entry ({oldest})" in page
    assert 'data-url="/api/events?last_event_id=1-0"' in page  # the client still opens
    future = f"{int(newest.split('-')[0]) + 1}-0"
    page = _replay(client_for, last_event_id=future)
    assert f"{future} is newer than the newest entry ({newest})" in page

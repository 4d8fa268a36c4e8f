"""A cache Redis that comes back empty warms itself: the data-loss markers
say it is cold, a worker's periodic check starts one warm (rate-limited, once per loss), the
warm resumes where a killed one stopped, and ``/health/`` says "cache cold / warming, N%"
until it is warm."""

from __future__ import annotations

import os
import signal
from decimal import Decimal
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from catalog.models import Part
from sync.cache import autowarm, connection
from sync.cache.keys import cache_key, warm_key
from sync.cache.writer import settle
from sync.tasks import warm_check
from tests.factories import make_part
from tests.subprocesses import popen_python
from tests.waiting import wait_until

pytestmark = pytest.mark.django_db(transaction=True)
ROWS = 120


@pytest.fixture
def parts() -> list[Part]:
    made = [make_part(price=Decimal("1.00")) for _ in range(ROWS)]
    settle()
    return made


def keys_present(redis_raw, parts) -> int:
    pipe = redis_raw.pipeline(transaction=False)
    for part in parts:
        pipe.exists(cache_key("catalog.part", part.pk))
    return sum(pipe.execute())


def warmth(client) -> tuple[int, str]:
    response = client.get("/health/?format=json")
    return response.status_code, response.json()["Cache warmth"]


def restart(server) -> None:
    server.kill()
    server.start()
    connection.reset_clients()


def test_a_cache_restarted_empty_warms_by_itself_and_health_says_so(
    client, parts, redis_control, redis_raw, celery_worker
) -> None:
    autowarm.run_warm()
    assert warmth(client) == (200, "OK")

    restart(redis_control)
    assert keys_present(redis_raw, parts) == 0
    status, said = warmth(client)
    assert status == 500
    assert said.startswith("Warning: cache cold, 0%")

    warm_check.delay()  # what beat sends every SYNC_WARM_CHECK_INTERVAL
    wait_until(
        lambda: autowarm.state().status == autowarm.WARM,
        timeout=30,
        what="the automatic warm finished",
    )
    assert keys_present(redis_raw, parts) == ROWS
    assert warmth(client) == (200, "OK")
    assert autowarm.state().describe() == f"warm ({ROWS:,} rows warmed)"


def test_beat_checks_for_a_cold_cache_and_drops_checks_no_worker_took() -> None:
    from django_celery_beat.models import PeriodicTask
    from django_celery_beat.schedulers import DatabaseScheduler, ModelEntry

    from config.celery import app

    DatabaseScheduler(app=app, lazy=True).update_from_dict(
        {"sync-warm-check": settings.CELERY_BEAT_SCHEDULE["sync-warm-check"]}
    )
    entry = ModelEntry(PeriodicTask.objects.get(name="sync-warm-check"), app=app)
    assert entry.task == warm_check.name
    assert entry.schedule.run_every.total_seconds() == settings.SYNC_WARM_CHECK_INTERVAL
    assert entry.options["expires"] == round(settings.SYNC_WARM_CHECK_INTERVAL)


def test_one_warm_is_started_per_data_loss_and_no_more_often_than_the_retry(
    parts, redis_raw
) -> None:
    started: list[int] = []
    autowarm.ensure_warm(enqueue=lambda: started.append(1))
    assert started == [1]  # never warmed: cold
    autowarm.ensure_warm(enqueue=lambda: started.append(1))
    assert started == [1]  # not started again while the first has not run (SYNC_WARM_RETRY)
    autowarm.run_warm()
    redis_raw.delete(warm_key("start"))
    assert autowarm.ensure_warm(enqueue=lambda: started.append(1)).status == autowarm.WARM
    assert started == [1]  # warm: nothing to do

    redis_raw.flushall()  # a data loss takes the record and the claim with it
    assert autowarm.ensure_warm(enqueue=lambda: started.append(1)).status == autowarm.COLD
    assert started == [1, 1]


def test_a_warm_killed_half_way_is_resumed_where_it_stopped(parts, redis_raw) -> None:
    redis_raw.flushall()
    child = popen_python("""
        import os
        from django.test.utils import override_settings
        from sync.cache import autowarm
        with override_settings(SYNC_WARM_RATE=100, SYNC_WARM_LOCK=1.0):
            autowarm.run_warm(batch_size=10)
    """)
    try:
        wait_until(
            lambda: autowarm.state().done >= 30, timeout=30, what="the child's warm under way"
        )
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.communicate()
    stopped = autowarm.state()
    assert stopped.status == autowarm.WARMING
    assert 30 <= stopped.done < ROWS
    assert stopped.describe().startswith(f"cache warming, {stopped.percent}%")
    wait_until(lambda: not autowarm.state().running, timeout=10, what="the dead warm's lock")
    assert "stopped (its worker died" in autowarm.state().describe()
    enqueued: list[int] = []
    autowarm.ensure_warm(enqueue=lambda: enqueued.append(1))
    assert enqueued == [1]  # a stopped warm is started again

    seen: list[int] = []
    finished = autowarm.run_warm(batch_size=10, progress=lambda s: seen.append(s.done))
    assert seen[0] == stopped.done + 10  # from its cursor, not from the start
    assert finished.status == autowarm.WARM
    assert finished.percent == 100
    assert keys_present(redis_raw, parts) == ROWS


def test_a_data_loss_during_the_warm_stops_it_and_leaves_the_cache_cold(
    parts, redis_raw, settings
) -> None:
    settings.SYNC_WARM_RATE = 0

    def flush_once(state: autowarm.WarmState) -> None:
        if state.done == 40:
            redis_raw.flushall()

    stopped = autowarm.run_warm(batch_size=20, progress=flush_once)
    assert stopped.status == autowarm.COLD
    assert autowarm.run_warm(batch_size=20).status == autowarm.WARM
    assert keys_present(redis_raw, parts) == ROWS


def test_a_second_warm_while_one_runs_returns_at_once(parts, redis_raw) -> None:
    redis_raw.flushall()
    redis_raw.set(warm_key("lock"), "someone else", px=10_000)
    assert autowarm.run_warm().running
    assert keys_present(redis_raw, parts) == 0
    out = StringIO()
    call_command("sync_warm", "--cold", stdout=out)
    assert out.getvalue().startswith("another warm is running: cache cold, 0%")


def test_sync_warm_cold_runs_the_automatic_warm_by_hand(parts, redis_raw, settings) -> None:
    settings.SYNC_WARM_RATE = 1000  # paced: 50 rows take 50 ms
    out = StringIO()
    call_command("sync_warm", "--cold", "--batch-size", "50", stdout=out)
    assert "was: cache cold, 0%" in out.getvalue()
    assert f"now: warm ({ROWS:,} rows warmed)" in out.getvalue()
    assert keys_present(redis_raw, parts) == ROWS
    call_command("sync_warm", "--cold", verbosity=0, stdout=out)  # already warm: a no-op
    redis_raw.flushall()
    quiet = StringIO()
    call_command("sync_warm", "--cold", verbosity=0, stdout=quiet)
    assert "[" not in quiet.getvalue()  # no progress bar at verbosity 0
    assert keys_present(redis_raw, parts) == ROWS
    with pytest.raises(CommandError, match="name no model"):
        call_command("sync_warm", "--cold", "catalog.part")


def test_an_empty_database_is_warm_and_an_unreachable_cache_is_unknown(redis_control) -> None:
    assert autowarm.state().describe() == "warm"
    redis_control.kill()
    found = autowarm.state()
    assert found.status == autowarm.UNKNOWN
    assert found.describe() == "unknown: the cache Redis does not answer"
    assert autowarm.ensure_warm(enqueue=pytest.fail) == found


def test_health_says_the_warmth_of_an_unreachable_cache_is_unknown(client, redis_control) -> None:
    redis_control.kill()
    status, said = warmth(client)
    assert status == 500
    assert said == "Warning: unknown: the cache Redis does not answer"  # not a green "OK"


def test_the_dashboard_shows_the_warm_progress(client, parts, redis_raw) -> None:
    from tests.console.conftest import make_staff_user

    client.force_login(
        make_staff_user("viewer"), backend="django.contrib.auth.backends.ModelBackend"
    )

    def warmth_card() -> dict:
        health = client.get("/api/sync/dashboard").json()["health"]
        return next(check for check in health if check["name"] == "Cache warmth")

    redis_raw.flushall()
    assert warmth_card()["error"].startswith("Warning: cache cold, 0%")
    seen: list[dict] = []
    autowarm.run_warm(batch_size=40, progress=lambda s: s.done == 40 and seen.append(warmth_card()))
    assert seen[0]["error"] == ("Warning: cache warming, 33% (40 of 120 rows), under way")
    assert warmth_card()["ok"]

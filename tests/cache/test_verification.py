"""Verification finds what is missing, stale and extra, and repair makes it 100%."""

from __future__ import annotations

import math
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from catalog.models import Part
from sync.cache.keys import cache_key
from sync.cache.maintenance import verify_models, warm_models
from tests.factories import make_part

pytestmark = pytest.mark.django_db(transaction=True)
LABEL = "catalog.part"


def test_reports_each_kind_and_repair_fixes_all(redis_raw) -> None:
    parts = [make_part() for _ in range(10)]
    redis_raw.delete(cache_key(LABEL, parts[0].pk))  # missing
    redis_raw.hset(cache_key(LABEL, parts[1].pk), "v", parts[1].version - 1)  # stale
    redis_raw.hset(cache_key(LABEL, parts[2].pk), mapping={"t": "1"})  # tombstoned
    redis_raw.hset(cache_key(LABEL, 10**9), mapping={"v": 1, "p": "[]", "t": "0"})  # extra
    (report,) = verify_models([LABEL])
    assert (report.rows, report.missing, report.stale, report.extra) == (10, 1, 2, 1)
    assert report.consistent == 7 and report.fraction == 0.7
    assert report.nines == pytest.approx(-math.log10(0.3))
    assert cache_key(LABEL, parts[0].pk) in report.examples["missing"]
    (repaired,) = verify_models([LABEL], repair=True, batch_size=3)  # several SCAN rounds
    assert repaired.repaired == 4
    (after,) = verify_models([LABEL])
    assert after.ok and after.fraction == 1.0 and math.isinf(after.nines)
    assert redis_raw.hget(cache_key(LABEL, 10**9), "t") == b"1"


def test_warm_rewrites_only_what_is_not_current(redis_raw) -> None:
    for _ in range(30):
        make_part()
    (first,) = warm_models([LABEL], batch_size=7)
    assert (first.done, first.total, first.written) == (30, 30, 0)
    redis_raw.flushdb()
    (second,) = warm_models([LABEL], batch_size=7)
    assert second.written == 30


def test_commands_explain_bad_input_and_list_models() -> None:
    out = StringIO()
    call_command("sync_verify", "--list", stdout=out)
    assert "catalog.part  tier 1" in out.getvalue()
    with pytest.raises(CommandError, match="not a synced model"):
        call_command("sync_verify", "auth.user", stdout=StringIO())
    with pytest.raises(CommandError, match="not a synced model"):
        call_command("sync_warm", "nope.nothing", stdout=StringIO())


def test_replay_command_reports_the_queue(redis_raw) -> None:
    part = make_part()
    Part.objects.filter(pk=part.pk).update(price=3)
    out = StringIO()
    call_command("sync_replay", "--all", "-v", "2", stdout=out)
    assert "claimed 1, written 1" in out.getvalue()
    assert "queue now 0 pending, 0 dead" in out.getvalue()


def test_commands_say_when_redis_is_down(redis_control) -> None:
    make_part()
    redis_control.kill()
    try:
        with pytest.raises(CommandError, match="Is the cache Redis"):
            call_command("sync_verify", LABEL, stdout=StringIO())
        with pytest.raises(CommandError, match="Is the cache Redis"):
            call_command("sync_warm", LABEL, stdout=StringIO())
    finally:
        redis_control.start()

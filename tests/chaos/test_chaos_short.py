"""The short chaos run: the benchmark's chaos run (driver.py), for ~25 s of faults, in the suite.

Writers, readers and a real Celery worker run as processes against the test run's database
and broker; the faults hit the cache Redis the ``redis_control`` fixture hands out (with an
external ``REDIS_URL``, a private server: never the machine's shared Redis).
"""

from __future__ import annotations

import sys

import pytest
from django.db import connection

from tests.chaos.driver import FAULTS, LEDGER, ChaosConfig, Targets, child_env, run_chaos

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def ledger():
    yield
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {LEDGER}")


def test_short_chaos_run_loses_nothing_and_leaks_nothing(
    redis_control, ledger, tmp_path, capsys
) -> None:
    config = ChaosConfig(
        duration=25,
        writers=3,
        readers=2,
        seed=8,
        fault_gap=3.0,
        rows=100,
        bulk_rows=20,
        converge_timeout=60,
        # a replayer killed mid-claim holds its intents for this long
        child_env={"SYNC_REPLAY_LEASE": "5"},
    )
    result = run_chaos(
        config, Targets(env=child_env(), cache=redis_control, workdir=tmp_path / "chaos")
    )
    with capsys.disabled():
        sys.stdout.write("\n" + result.table() + "\n")
    faults, proven = result.faults(), result.proven()
    assert all(faults[kind] >= 1 for kind in FAULTS), faults
    assert proven["writer_kill"] >= 1 and result.killed_after_commit >= 1, result.table()
    assert proven["worker_kill"] >= 1 and proven["pg_terminate"] >= 1, result.table()
    assert result.writes > 1000 and result.reads > 1000, result.table()
    assert result.writes_lost == 0, result.table()
    assert result.after == (0, 0, 0), result.table()
    assert result.dead_intents == 0 and result.converge_s is not None, result.table()
    assert result.canaries_redis == 0 and not result.canaries_logs, result.table()
    assert not result.crashes, result.table()

"""The chaos run with its worker dead for a while: nothing is lost, reads stay
fresh without replay, and the table carries the staleness percentiles and the consistency
sampler's figures next to the run's own."""

from __future__ import annotations

import sys

import pytest
from django.db import connection

from tests.chaos.driver import LEDGER, ChaosConfig, Targets, child_env, run_chaos

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_a_worker_dead_for_seconds_loses_nothing(redis_control, tmp_path, capsys) -> None:
    config = ChaosConfig(
        duration=20,
        writers=2,
        readers=2,
        seed=8,
        fault_gap=3.0,
        rows=100,
        bulk_rows=20,
        converge_timeout=60,
        worker_dead=8,
        sampler_interval=2,
        child_env={"SYNC_REPLAY_LEASE": "5"},
    )
    try:
        result = run_chaos(
            config, Targets(env=child_env(), cache=redis_control, workdir=tmp_path / "chaos")
        )
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {LEDGER}")
    table = result.table()
    with capsys.disabled():
        sys.stdout.write("\n" + table + "\n")
    assert result.ok, table
    assert (result.faults()["worker_dead"], result.proven()["worker_dead"]) == (1, 1), table
    assert "staleness of stale reads p50 / p99 / max" in table
    samples, consistent = result.sampler[10]
    assert samples > 0 and 0 <= consistent <= samples, table
    assert "sampler: writes consistent in Redis within 10 s" in table

"""``bench/api.py`` still runs end to end in its smallest form and prints every row of its
table: the product page and the API, cache hit against PostgreSQL only; commit to browser;
idle SSE clients, their memory and the fan-out. Only that the rows are there, never the
figures (a benchmark is not a test of speed).

The script runs as a child process against this test's database and Redis
(``tests/subprocesses.child_env``), so it starts no servers of its own.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from config.env import ROOT
from tests.browser import CHROMIUM
from tests.subprocesses import child_env

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

SMALLEST = [
    "--parts=5",
    "--rounds=1",
    "--seconds=0.3",
    "--connections=2",
    "--in-process=5",
    "--sse-clients=20",
    "--sse-events=2",
    "--browser-updates=3",
    "--python-loader",
]


def test_the_smallest_run_prints_every_row() -> None:
    run = subprocess.run(
        [sys.executable, "bench/api.py", *SMALLEST],
        cwd=ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    table = run.stdout
    for heading in (
        "[GET /api/parts/{id} in this process",
        "[GET /parts/{id}/ (product page, HTML) in this process",
        "[GET /api/parts/{id}: one uvicorn worker each",
        "[GET /parts/{id}/ (product page, HTML): one uvicorn worker each",
        "[commit -> browser:",
        "[GET /api/events: one uvicorn process, 20 idle clients",
    ):
        assert heading in table, table
    for row in (
        "cache hit (repository.get x2)",
        "page from a cache hit",
        "clients held",
        "server memory (RSS)",
        "fan-out p50, every client has it",
        "fan-out p99, every client has it",
        "reference: Centrifugo",
        "load average at the end:",
    ):
        assert row in table, table
    assert "not measured" not in table, table
    assert "FAILED" not in table, table
    if CHROMIUM.exists():
        for row in ("commit -> page shows it p50", "commit -> page shows it p99", "max"):
            assert row in table, table
        assert "SSE frame -> DOM shows it" in table, table
    else:
        assert f"{CHROMIUM} is missing" in table, table

"""``/metrics`` with several processes (prometheus-client's multiprocess mode): two processes
read through the cache and a third (the one a scraper happens to reach) reports the reads of
both, and the database figures once, not once per process."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from config.env import ROOT
from tests.factories import make_part
from tests.subprocesses import PRELUDE, child_env

pytestmark = pytest.mark.slow

READ = """
from catalog.models import Part
from sync.cache import repository
for _ in range({n}):
    assert repository.get(Part, {pk}) is not None
"""
SCRAPE = """
from sync.ops.metrics import render_metrics
print(render_metrics().decode())
"""


def _python(code: str, directory) -> str:
    env = child_env() | {"PROMETHEUS_MULTIPROC_DIR": str(directory)}
    done = subprocess.run(
        [sys.executable, "-c", PRELUDE + code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _reads(text: str) -> float:
    return sum(
        float(value)
        for value in re.findall(
            r'^sync_cache_reads_total\{model="catalog\.part",outcome="[a-z]+"\} (\S+)$',
            text,
            re.MULTILINE,
        )
    )


def test_a_scrape_sums_the_counters_of_every_process(
    transactional_db, tmp_path, monkeypatch
) -> None:
    part = make_part()
    _python(READ.format(n=3, pk=part.pk), tmp_path)  # one worker process …
    _python(READ.format(n=2, pk=part.pk), tmp_path)  # … and another
    text = _python(SCRAPE, tmp_path)  # the web process the scraper reached
    assert _reads(text) == 5
    # A database figure is the same in every process: it appears once.
    assert len(re.findall(r'^sync_retry_queue_size\{status="pending"\}', text, re.MULTILINE)) == 1

    # This process scraping the same directory sees the same sum.
    from sync.ops.metrics import render_metrics

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    assert _reads(render_metrics().decode()) == 5


HOLD_CLIENTS = """
import sys
from catalog.streaming import CLIENTS
CLIENTS.inc(3)
print("holding", flush=True)
sys.stdin.readline()
"""


def _clients(text: str) -> float:
    found = re.findall(r"^catalog_sse_clients (\S+)$", text, re.MULTILINE)
    return sum(float(value) for value in found)


def test_a_process_that_ended_no_longer_counts_its_sse_clients(
    transactional_db, tmp_path, monkeypatch
) -> None:
    """A web process holds 3 event-stream clients, then ends (restarted, killed): the scrape
    counts them while it lives and no longer once it has gone."""
    from sync.ops.metrics import render_metrics

    holder = subprocess.Popen(
        [sys.executable, "-c", PRELUDE + HOLD_CLIENTS],
        cwd=ROOT,
        env=child_env() | {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    try:
        assert holder.stdout.readline().strip() == "holding"
        assert _clients(render_metrics().decode()) == 3
    finally:
        holder.communicate("\n", timeout=60)

    assert _clients(render_metrics().decode()) == 0
    assert not list(tmp_path.glob("gauge_live*"))

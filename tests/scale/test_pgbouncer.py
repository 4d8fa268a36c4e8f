"""The engine behind a real PgBouncer, with the package Debian ships (skipped,
saying why, without it). Transaction pooling: write-through, bulk intents, replay with SKIP
LOCKED, verification and ``QuerySet.iterator`` from two processes sharing two server
connections, with ``DATABASE_POOLING=transaction``. Session pooling: an ingest run with its
per-source lock. And the reason ingestion must not use transaction pooling, shown.
docs/scaling.md "PostgreSQL: PgBouncer and read replicas" is the operator's summary."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from buyers.models import Buyer
from catalog.models import Part
from config.env import ROOT
from devtools.sheets import BUYER_HEADERS, buyer_rows, write
from sync.cache.maintenance import verify_models
from sync.ingest.pipeline import LOCK_CLASS
from sync.models import ErrorLog, SyncIntent, SyncRun
from tests.engine_fixtures import fresh_engine_state, redis_raw  # noqa: F401 - fixtures
from tests.scale.pgbouncer import PgBouncer, pgbouncer_binary
from tests.subprocesses import PRELUDE, child_env

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
    pytest.mark.skipif(
        pgbouncer_binary() is None,
        reason=(
            "no pgbouncer binary: apt-get install pgbouncer (Debian package) to run "
            "the PgBouncer tests"
        ),
    ),
]


@pytest.fixture
def bouncer():
    server = PgBouncer(pgbouncer_binary(), pool_size=2)
    yield server
    server.stop()


def through(bouncer: PgBouncer, database: str, code: str, **env: str) -> subprocess.Popen:
    environment = {**child_env(), "DATABASE_URL": bouncer.url(database), **env}
    return subprocess.Popen(
        [sys.executable, "-c", PRELUDE + textwrap.dedent(code)],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


ENGINE = """
    from django.conf import settings
    from django.db import connection
    from django.db.models.functions import Now
    from catalog.models import Part
    from sync.cache.replay import replay_pending
    from sync.cache.writer import settle
    from sync.models import SyncIntent

    assert settings.SYNC_PREPARED_STATEMENTS is False
    assert connection.settings_dict["DISABLE_SERVER_SIDE_CURSORS"] is True
    prefix = "{prefix}"
    parts = [Part.objects.create(sku=f"{{prefix}}-{{n}}", name="p", price=n)
             for n in range(40)]  # each written through on commit
    for part in parts[::2]:
        part.price += 100
        part.save()
    Part.objects.filter(sku__startswith=prefix).update(name="bulk")  # intents, no write
    SyncIntent.objects.filter(object_pk__in=[str(p.pk) for p in parts]).update(
        next_attempt_at=Now())
    for _ in range(20):  # the other process replays too: SKIP LOCKED shares the work
        if not replay_pending(batch_size=7).claimed:
            break
    settle()
    names = {{p.name for p in Part.objects.filter(sku__startswith=prefix).iterator(
        chunk_size=5)}}
    assert names == {{"bulk"}}, names
    print("ok", len(parts))
"""


def test_the_engine_path_through_transaction_pooling(bouncer, redis_raw) -> None:  # noqa: F811
    procs = [
        through(bouncer, "tx", ENGINE.format(prefix=f"PGB{n}"), DATABASE_POOLING="transaction")
        for n in range(2)
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-3000:] + bouncer.log()
        assert out.strip() == "ok 40"
    assert not SyncIntent.objects.exists()  # every intent completed (none dead)
    (report,) = verify_models(["catalog.part"])
    assert report.rows == Part.objects.count() == 80
    assert (report.missing, report.stale, report.extra) == (0, 0, 0), report.examples


INGEST = """
    from sync.ingest.pipeline import run_ingest
    run = run_ingest("buyers", file="{path}", batch_size=50)
    print(run.pk)
"""


def test_ingest_with_its_lock_through_session_pooling(bouncer, tmp_path, settings) -> None:
    sheet = write(tmp_path / "buyers.csv", BUYER_HEADERS, list(buyer_rows(180, 0)))
    proc = through(bouncer, "session", INGEST.format(path=sheet))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-3000:]
    run = SyncRun.objects.get(pk=int(out.split()[-1]))
    assert run.status == SyncRun.Status.SUCCEEDED, run.message
    assert (run.rows_done, run.created) == (180, 180)
    assert Buyer.objects.count() == 180
    # The lock knows its connection by the client's backend pid (behind PgBouncer not the
    # server's pg_backend_pid()): no batch is taken for a lost connection.
    assert not ErrorLog.objects.filter(run_id=run.pk, code="reconnected").exists()


def test_a_session_lock_is_no_lock_under_transaction_pooling(bouncer) -> None:
    """Why ingestion needs session pooling (or a direct connection): with transaction
    pooling, two clients that take the same source's session advisory lock can both get it
    (they share one server connection, where the lock is re-entrant), and what
    ``pg_backend_pid`` and the client see as the backend differ."""
    one, two = bouncer.connect("tx"), bouncer.connect("tx")
    try:
        taken = [
            c.execute(
                "SELECT pg_try_advisory_lock(%s, hashtext('buyers'))", [LOCK_CLASS]
            ).fetchone()[0]
            for c in (one, two)
        ]
        server_pid = one.execute("SELECT pg_backend_pid()").fetchone()[0]
        assert one.info.backend_pid != server_pid  # PgBouncer's own key, not the server's
    finally:
        for conn in (one, two):
            conn.execute("SELECT pg_advisory_unlock_all()")
            conn.close()
    assert taken == [True, True]  # both "hold" the source: two runs would overlap

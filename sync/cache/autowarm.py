"""The automatic warm: a cache Redis that came back empty refills itself.

The cache Redis has no persistence, so a restart or a FLUSHALL empties it; reads then fill
one miss at a time and the cache stays mostly cold for as long as nobody runs ``sync_warm``.
Here the data-loss markers (``store.Marks``) decide: a warm is recorded in Redis itself
(``<prefix>:{__warm__}``, a hash: the markers it was made for, status, rows done of total,
a keyset cursor per model), so the record goes when the data goes. Redis is **cold** when
no record matches the markers it holds now (and PostgreSQL has rows to warm), **warming**
while a warm for these markers is under way, **warm** once one finished.

Where it runs: ``ensure_warm`` is cheap (three reads) and runs on a worker every
``SYNC_WARM_CHECK_INTERVAL`` (beat's ``sync-warm-check``); when Redis is cold, or a warm was
left half-done by a worker that died, it enqueues one ``sync.tasks.warm_cold`` — at most one
start per ``SYNC_WARM_RETRY`` seconds (a claim key, lost with the data, so the first start
after a loss is immediate). ``run_warm`` takes a lock (renewed with every batch, so a killed
worker's lapses after ``SYNC_WARM_LOCK``), resumes from the recorded cursor, writes
``SYNC_WARM_BATCH`` rows a pipeline at no more than ``SYNC_WARM_RATE`` rows/s, and records
its progress after each batch. With no worker alive nothing warms: the web process never
warms in a request (reads still fill their own misses); ``/health/`` and the dashboard say
"cache cold" and ``manage.py sync_warm --cold`` runs the same warm by hand.

Popular rows first: the warm starts with phase ``popular``, the rows most read before the
loss (``sync.cache.popularity``'s snapshot in PostgreSQL, which the flush did not reach), most
read first, by primary key in batches, with the same versioned writes; then phase ``all``,
the keyset pass over every row. ``done`` of ``total`` counts the keyset pass only (it writes
the popular rows again, a compare-and-set that changes nothing), ``popular_done`` of
``popular_total`` the first phase; a warm resumed in phase ``popular`` starts that phase
again (a few thousand rows at most). A popular key whose row is gone is skipped; a
soft-deleted one is written as a tombstone, as the keyset pass would.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, cast

from django.conf import settings

from sync.cache import connection, popularity, store
from sync.cache.ahead import read_ahead
from sync.cache.declaration import SyncSpec, synced_models
from sync.cache.exceptions import CacheUnavailableError
from sync.cache.keys import warm_key
from sync.cache.warming import count_rows, prepared, rows_by_pk, write_batch, write_prepared

logger = logging.getLogger(__name__)

COLD, WARMING, WARM, UNKNOWN = "cold", "warming", "warm", "unknown"
POPULAR, ALL = "popular", "all"  # the warm's phases: the most read rows, then every row


@dataclass(frozen=True)
class WarmState:
    status: str
    done: int = 0
    total: int = 0
    running: bool = False  # a warm holds the lock now
    started_at: float | None = None
    finished_at: float | None = None
    detail: str = ""
    phase: str = ALL
    popular_done: int = 0
    popular_total: int = 0

    @property
    def percent(self) -> int:
        if self.status == WARM:
            return 100
        # Rows added meanwhile may take done past total: never 100 before it is warm.
        return min(99, self.done * 100 // self.total) if self.total else 0

    def describe(self) -> str:
        if self.status == WARM:
            return "warm" if not self.total else f"warm ({self.total:,} rows warmed)"
        if self.status == UNKNOWN:
            return f"unknown: {self.detail}"
        if self.status == COLD:
            return (
                "cache cold, 0%: the cache Redis lost its data (or never had it) and no "
                "warm has started; a worker starts one by itself (sync.tasks.warm_check), "
                "or run manage.py sync_warm --cold"
            )
        where = (
            "under way"
            if self.running
            else "stopped (its worker died or no worker runs); it resumes when a worker "
            "takes it, or run manage.py sync_warm --cold"
        )
        first = (
            f"; the most read first: {self.popular_done:,} of {self.popular_total:,}"
            if self.phase == POPULAR
            else ""
        )
        return (
            f"cache warming, {self.percent}% ({self.done:,} of {self.total:,} rows{first}), {where}"
        )


def _read(client: connection.Client) -> tuple[dict[str, str], bool]:
    # The engine's clients never decode replies: they are bytes.
    raw = cast("dict[bytes, bytes]", client.hgetall(warm_key()))
    recorded = {k.decode(): v.decode() for k, v in raw.items()}
    return recorded, bool(client.exists(warm_key("lock")))


def _has_rows() -> bool:
    return any(spec.model._base_manager.exists() for spec in synced_models())


def state() -> WarmState:
    """Cold, warming or warm, from Redis' own record and markers (and PostgreSQL only when
    there is no record: whether there is anything to warm)."""
    try:
        tokens = store.marker_tokens(create=False)
        recorded, running = connection.run(_read)
    except CacheUnavailableError:
        return WarmState(UNKNOWN, detail="the cache Redis does not answer")
    if recorded.get("token") != tokens:
        return WarmState(COLD if _has_rows() else WARM, running=running)
    finished = recorded.get("finished_at")
    return WarmState(
        recorded["status"],
        int(recorded["done"]),
        int(recorded["total"]),
        running,
        float(recorded["started_at"]),
        float(finished) if finished else None,
        phase=recorded.get("phase", ALL),
        popular_done=int(recorded.get("popular_done", 0)),
        popular_total=int(recorded.get("popular_total", 0)),
    )


def ensure_warm(*, enqueue: Callable[[], object]) -> WarmState:
    """Start the automatic warm when Redis is cold or a warm stopped half-way (see above)."""
    current = state()
    if current.status in {WARM, UNKNOWN} or current.running:
        return current
    retry_ms = int(settings.SYNC_WARM_RETRY * 1000)
    if connection.run(lambda client: client.set(warm_key("start"), "1", nx=True, px=retry_ms)):
        logger.warning("cache Redis %s: starting the automatic warm", current.describe())
        enqueue()
    return current


def run_warm(
    *, batch_size: int | None = None, progress: Callable[[WarmState], None] | None = None
) -> WarmState:
    """Warm every synced model for the markers Redis holds now, resuming a warm that stopped;
    returns at once when another warm holds the lock."""
    owner = secrets.token_hex(8)
    lock_ms = int(settings.SYNC_WARM_LOCK * 1000)
    if not connection.run(lambda client: client.set(warm_key("lock"), owner, nx=True, px=lock_ms)):
        return state()
    try:
        return _run(owner, lock_ms, batch_size or settings.SYNC_WARM_BATCH, progress)
    finally:
        with contextlib.suppress(CacheUnavailableError):
            connection.run(
                lambda client: store.eval_keys(
                    client, "warm_unlock", [((warm_key("lock"),), [owner])]
                )
            )


def _run(
    owner: str, lock_ms: int, batch_size: int, progress: Callable[[WarmState], None] | None
) -> WarmState:
    tokens = store.marker_tokens(create=True)
    recorded, _running = connection.run(_read)
    fresh = recorded.get("token") != tokens
    if not fresh and recorded["status"] == WARM:
        return state()
    phase = POPULAR if fresh else recorded.get("phase", ALL)
    popular = (
        [(spec, popularity.popular_pks(spec)) for spec in synced_models()]
        if phase == POPULAR
        else []
    )
    popular_total = sum(len(pks) for _spec, pks in popular)
    if fresh:
        recorded = {
            "token": tokens,
            "status": WARMING,
            "phase": POPULAR,
            "popular_done": "0",
            "popular_total": str(popular_total),
            "done": "0",
            "cursor": "{}",
            "total": str(sum(count_rows(spec) for spec in synced_models())),
            "started_at": repr(time.time()),
        }
        connection.run(lambda client: _start(client, recorded))
        logger.info(
            "automatic warm: %s rows to write, the %s most read first",
            recorded["total"],
            popular_total,
        )
    else:
        logger.info(
            "automatic warm: resuming at %s of %s rows", recorded["done"], recorded["total"]
        )
    # Per model: the last primary key written (its text), or true once the model is done.
    cursor: dict[str, str | Literal[True]] = json.loads(recorded["cursor"])
    done, total, started = int(recorded["done"]), int(recorded["total"]), time.monotonic()
    written = popular_done = 0

    def record(**fields: object) -> bool:
        args = [owner, tokens, lock_ms]
        for name, value in fields.items():
            args += [name, value]
        (ok,) = connection.run(
            lambda client: store.eval_keys(
                client, "warm_progress", [((warm_key(), warm_key("lock")), args)]
            )
        )
        return bool(ok)

    def stopped() -> WarmState:
        logger.warning(
            "automatic warm stopped: the cache Redis lost its data again "
            "(or another warm took over); the next check starts again"
        )
        return state()

    if phase == POPULAR:
        for spec, pks in popular:
            for start in range(0, len(pks), batch_size):
                chunk = pks[start : start + batch_size]
                count = _write_popular(spec, chunk)
                if count is None or not record(
                    popular_done=popular_done + len(chunk), popular_total=popular_total
                ):
                    return stopped()
                popular_done, written = popular_done + len(chunk), written + count
                if progress:
                    progress(
                        WarmState(
                            WARMING,
                            done,
                            total,
                            running=True,
                            phase=POPULAR,
                            popular_done=popular_done,
                            popular_total=popular_total,
                        )
                    )
                _pace(written, started)
        if not record(phase=ALL):
            return stopped()
    for spec in synced_models():
        after = cursor.get(spec.label)
        if after is True:
            continue
        # The next batch is read and encoded while this one is written (sync.cache.ahead).
        batches = read_ahead(functools.partial(prepared, spec, batch_size, after))
        try:
            for batch in batches:
                write_prepared(batch)
                done, written, cursor[spec.label] = (
                    done + len(batch.rows),
                    written + len(batch.rows),
                    batch.rows[-1][0],
                )
                if batch.marks.lost or not record(done=done, cursor=json.dumps(cursor)):
                    return stopped()
                if progress:
                    progress(WarmState(WARMING, done, total, running=True))
                _pace(written, started)
        finally:
            batches.close()
        cursor[spec.label] = True
    record(status=WARM, done=done, cursor=json.dumps(cursor), finished_at=repr(time.time()))
    logger.info("automatic warm finished: %s rows", done)
    return state()


def _write_popular(spec: SyncSpec, pks: list[str]) -> int | None:
    """Write the rows of these popular keys (one query, one pipeline): how many rows were
    read, or None when Redis lost its data meanwhile (the warm stops)."""
    marks = store.capture()
    batch = rows_by_pk(spec, pks)
    if batch:
        write_batch(spec, batch, marks)
    return None if marks.lost else len(batch)


def _start(client: connection.Client, recorded: dict[str, str]) -> None:
    pipe = client.pipeline(transaction=not connection.is_cluster(client))
    pipe.delete(warm_key())
    # redis-py types the mapping's keys invariantly: it refuses a dict[str, str].
    pipe.hset(warm_key(), mapping=recorded)  # type: ignore[arg-type]
    pipe.execute()


def _pace(written: int, started: float) -> None:
    """No more than SYNC_WARM_RATE rows/s (0: as fast as PostgreSQL and Redis go)."""
    rate = settings.SYNC_WARM_RATE
    if rate > 0:
        ahead = written / rate - (time.monotonic() - started)
        if ahead > 0:
            time.sleep(ahead)

"""The chaos run: a workload under faults, and what it proves (docs/scaling.md, "Proof under
faults").

Writer processes make random creates, updates, deletes (hard and soft) and bulk updates on the
synced models (catalog parts and stock levels, customers with PII, encrypted orders, buyers),
reader processes read random keys through ``sync.cache.repository``, and a real Celery worker
replays the outbox, while a fault injector, at seeded random moments, SIGSTOPs/SIGCONTs the
cache Redis, SIGKILLs it and starts it again (empty), runs FLUSHALL, SIGKILLs the Celery worker
while it replays, makes a writer SIGKILL itself right after a COMMIT (before its write-through)
and terminates the run's PostgreSQL backends. Then: stop, let replay drain, verify, and print

* writes committed: rows written by committed transactions, counted from PostgreSQL (each
  write transaction inserts a ``chaos_ledger`` row with its row count, in the same transaction:
  a writer killed right after COMMIT is counted exactly); a bulk update counts every row;
* writes lost: after the drain, rows whose newest version Redis does not hold (Redis older,
  a tombstone over a live row, or a live value for a deleted row) — must be 0;
* keys stale or missing after convergence (after ``sync_warm`` refills the keys that restarts
  and FLUSHALL emptied) — must be 0;
* reads that returned a version older than the newest committed one at read start, during
  faults and overall, as a fraction and in nines, with the longest staleness seen;
* time to converge after the last fault, and PII canaries found in Redis or in any log — 0.

``./dev bench chaos`` (``bench/chaos.py``) runs it for minutes on servers of its own; the suite
runs it shortened (``test_chaos_short.py``, ``test_chaos_worker_dead.py``).
"""

from __future__ import annotations

import array
import contextlib
import json
import math
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tests.chaos.faults import (
    FAULTS,
    ChaosConfig,
    Fleet,
    Injector,
    Targets,
    Window,
    child_env,
)
from tests.chaos.load import LABELS, LEDGER, Writer, canary, run_digits

__all__ = [
    "FAULTS",
    "LABELS",
    "LEDGER",
    "ChaosConfig",
    "ChaosResult",
    "Targets",
    "child_env",
    "run_chaos",
]

# A read counts as "during faults" from a fault's start until this long after its end: the
# replay grace (5 s) plus a few replay intervals, the time replay needs to repair it.
RECOVERY_S = 8.0


def log(message: str) -> None:
    sys.stderr.write(f"[chaos {time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


# --------------------------------------------------------------------------- the result


def nines(bad: int, total: int) -> str:
    """``99.97% fresh (3.5 nines)``: the good fraction, and -log10 of the bad one."""
    if not total:
        return "no reads"
    good = 1 - bad / total
    if not bad:
        return f"{good:.4%} (no stale read in {total:,})"
    return f"{good:.4%} ({-math.log10(bad / total):.1f} nines)"


@dataclass
class ChaosResult:
    config: ChaosConfig
    run: str
    elapsed: float = 0.0
    windows: list[Window] = field(default_factory=list)
    writes: int = 0
    transactions: int = 0
    killed_after_commit: int = 0
    writes_lost: int = 0
    lost_examples: list[str] = field(default_factory=list)
    cold_keys: int = 0
    after: tuple[int, int, int] = (0, 0, 0)  # stale, missing, extra after convergence
    rows: int = 0
    dead_intents: int = 0
    reads: int = 0
    stale_reads: int = 0
    reads_during: int = 0
    stale_during: int = 0
    read_errors: int = 0
    longest_stale: float | None = None
    stale_percentiles: tuple[float, float] | None = None  # p50, p99 of the stale reads' ages
    sampler: dict[int, tuple[int, int]] = field(default_factory=dict)  # window: samples, ok
    longest_stale_cause: str = ""  # the model, and the faults around the commit it missed
    converge_s: float | None = None
    canaries_planted: int = 0
    canaries_redis: int = 0
    canaries_logs: list[str] = field(default_factory=list)
    crashes: list[str] = field(default_factory=list)

    def faults(self) -> Counter[str]:
        return Counter(w.kind for w in self.windows)

    def proven(self) -> Counter[str]:
        return Counter(w.kind for w in self.windows if w.proven)

    @property
    def ok(self) -> bool:
        return (
            self.writes_lost == 0
            and self.after == (0, 0, 0)
            and self.dead_intents == 0
            and self.converge_s is not None
            and self.canaries_redis == 0
            and not self.canaries_logs
            and not self.crashes
            and self.writes >= self.config.min_writes
        )

    def table(self) -> str:
        c = self.config
        faults, proven = self.faults(), self.proven()
        rows = [
            (
                "writes committed (rows, bulk rows each)",
                f"{self.writes:,} in {self.transactions:,} transactions",
                f"≥ {c.min_writes:,}",
                self.writes >= c.min_writes,
            ),
            (
                "writes lost (Redis older than PostgreSQL after the drain)",
                f"{self.writes_lost:,}",
                "0",
                self.writes_lost == 0,
            ),
            (
                "keys stale / missing / extra after convergence",
                " / ".join(f"{n:,}" for n in self.after) + f" of {self.rows:,} rows",
                "0",
                self.after == (0, 0, 0),
            ),
            (
                "  keys emptied by restarts/FLUSHALL (refilled by sync_warm)",
                f"{self.cold_keys:,}",
                "",
                None,
            ),
            (
                "intents dead after convergence",
                f"{self.dead_intents:,}",
                "0",
                self.dead_intents == 0,
            ),
            (
                "reads that returned stale data during faults",
                f"{self.stale_during:,} of {self.reads_during:,}: "
                + nines(self.stale_during, self.reads_during),
                "",
                None,
            ),
            (
                "reads that returned stale data outside faults",
                f"{self.stale_reads - self.stale_during:,} of {self.reads - self.reads_during:,}: "
                + nines(self.stale_reads - self.stale_during, self.reads - self.reads_during),
                "",
                None,
            ),
            (
                "reads that returned stale data overall",
                f"{self.stale_reads:,} of {self.reads:,}: " + nines(self.stale_reads, self.reads),
                "",
                None,
            ),
            (
                "  longest staleness of a stale read",
                "-"
                if self.longest_stale is None
                else f"{self.longest_stale:.2f} s ({self.longest_stale_cause})",
                "",
                None,
            ),
            (
                "  staleness of stale reads p50 / p99 / max",
                "-"
                if self.stale_percentiles is None
                else " / ".join(
                    f"{v:.3f} s" for v in (*self.stale_percentiles, self.longest_stale)
                ),
                "",
                None,
            ),
            (
                "  reads failed (their PostgreSQL backend terminated)",
                f"{self.read_errors:,}",
                "",
                None,
            ),
            *[
                (
                    f"sampler: writes consistent in Redis within {seconds} s",
                    f"{ok:,} of {n:,}: " + nines(n - ok, n)
                    if n
                    else "no samples (the window is longer than the run)",
                    "",
                    None,
                )
                for seconds, (n, ok) in sorted(self.sampler.items())
            ],
            (
                "time to converge after the last fault",
                "NOT CONVERGED" if self.converge_s is None else f"{self.converge_s:.1f} s",
                f"≤ {c.converge_timeout:.0f} s",
                self.converge_s is not None,
            ),
            (
                "PII canaries found in Redis / in logs",
                (
                    f"{self.canaries_redis} / {len(self.canaries_logs)} "
                    f"({self.canaries_planted:,} planted)"
                ),
                "0",
                self.canaries_redis == 0 and not self.canaries_logs,
            ),
            ("child processes crashed", f"{len(self.crashes)}", "0", not self.crashes),
        ]
        rows += [
            (f"fault: {kind}", f"{faults[kind]} ({proven[kind]} proven)", "≥ 1", None)
            for kind in FAULTS
        ]
        if c.worker_dead:
            rows.append(
                (
                    f"fault: worker_dead ({c.worker_dead:g} s, once)",
                    f"{faults['worker_dead']} ({proven['worker_dead']} proven)",
                    "1",
                    faults["worker_dead"] == proven["worker_dead"] == 1,
                )
            )
        width = [max(len(r[i]) for r in rows) for i in range(3)]
        rule = "-" * (sum(width) + 12)
        lines = [
            (
                f"chaos run {self.run}: seed {c.seed}, {c.writers} writers, {c.readers} "
                f"readers, {self.elapsed:.0f} s of faults (asked {c.duration:.0f} s), "
                f"a fault every ~{c.fault_gap:g} s"
            ),
            rule,
        ]
        for name, value, goal, met in rows:
            verdict = "" if met is None else ("ok" if met else "FAILED")
            lines.append(
                f"{name.ljust(width[0])}  {value.ljust(width[1])}  "
                f"{goal.ljust(width[2])}  {verdict}".rstrip()
            )
        lines += [rule, f"verdict: {'all invariants held' if self.ok else 'INVARIANT BROKEN'}"]
        lines += [f"  lost: {example}" for example in self.lost_examples]
        lines += [f"  canary in log: {where}" for where in self.canaries_logs[:10]]
        lines += [f"  crash: {crash[:500]}" for crash in self.crashes[:5]]
        return "\n".join(lines)


# --------------------------------------------------------------------------- the run


def _models():
    return Writer._models()


def remove_rows() -> int:
    """Delete the rows of earlier chaos runs (their intents replay as tombstones)."""
    from django.db import transaction

    from sync.cache.replay import replay_pending

    m = _models()
    removed = 0
    with transaction.atomic():
        for model, name in (
            (m["Order"], "customer__customer_number"),
            (m["Order"], "order_number"),
            (m["Customer"], "customer_number"),
            (m["Buyer"], "buyer_number"),
            (m["Part"], "sku"),
        ):
            removed += model._base_manager.filter(**{f"{name}__startswith": "chaos:"}).delete()[0]
    replay_pending(include_not_due=True)
    return removed


def _prepare(config: ChaosConfig, run: str) -> int:
    """The ledger table, and ``config.rows`` rows per model (written through on commit)."""
    from django.db import connection, transaction
    from django.utils import timezone

    from sync.cache.bulk import bulk_create_synced

    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {LEDGER} (id bigserial PRIMARY KEY,"
            " writer int NOT NULL, op text NOT NULL, rows int NOT NULL,"
            " killed boolean NOT NULL, at timestamptz NOT NULL DEFAULT now())"
        )
        cursor.execute(f"TRUNCATE {LEDGER}")
    m, now, n = _models(), timezone.now(), config.rows
    with transaction.atomic():
        parts = bulk_create_synced(
            m["Part"],
            [
                m["Part"](sku=f"chaos:P{run}-s-{i}", name=f"part {i}", price=i % 500 + 1)
                for i in range(n)
            ],
        )
        bulk_create_synced(m["StockLevel"], [m["StockLevel"](part=p, quantity=500) for p in parts])
        customers = bulk_create_synced(
            m["Customer"],
            [
                m["Customer"](customer_number=f"chaos:C{run}-s-{i}", country="DE", **canary(run, i))
                for i in range(n)
            ],
        )
        bulk_create_synced(
            m["Order"],
            [
                m["Order"](
                    order_number=f"chaos:O{run}-s-{i}",
                    customer=customers[i % n],
                    items=[],
                    total=i,
                    shipping_address=f"{i} cnry{run}x{i} Road",
                    placed_at=now,
                )
                for i in range(n)
            ],
        )
        bulk_create_synced(
            m["Buyer"],
            [
                m["Buyer"](
                    buyer_number=f"chaos:B{run}-s-{i}",
                    name=canary(run, i)["name"],
                    email=canary(run, i)["email"],
                    status="active",
                    created_at=now,
                    synced_at=now,
                    db_updated_at=now,
                )
                for i in range(n)
            ],
        )
    return 3 * n


def _committed() -> tuple[int, int, int]:
    """(rows written, transactions, transactions killed right after COMMIT), from the ledger."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT coalesce(sum(rows), 0), count(*), count(*) FILTER (WHERE killed)"  # noqa: S608
            f" FROM {LEDGER}"
        )
        return cursor.fetchone()


def _converged() -> tuple[bool, int]:
    """(nothing pending and every fence drained, dead intents)."""
    from django.db import connection

    from sync.cache import store
    from sync.cache.exceptions import CacheUnavailableError

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FILTER (WHERE status = 'pending'),"
            " count(*) FILTER (WHERE status = 'dead') FROM sync_retry_queue"
        )
        pending, dead = cursor.fetchone()
        cursor.execute("SELECT model, epoch FROM sync_fence WHERE epoch > 0")
        epochs = dict(cursor.fetchall())
    try:
        drained = store.fence() if epochs else {}
    except CacheUnavailableError:
        return False, dead
    fenced = any(epoch > drained.get(label, 0) for label, epoch in epochs.items())
    return pending == 0 and not fenced, dead


def _reads(result: ChaosResult, workdir: Path, readers: int) -> None:
    windows = [(w.start, w.end + RECOVERY_S) for w in result.windows]
    stale_reads: list[tuple[float, float | None, str]] = []
    for index in range(readers):
        path = workdir / f"reader{index}"
        times = array.array("d")
        with path.with_suffix(".times").open("rb") as data:
            times.frombytes(data.read())
        stale = path.with_suffix(".stale").read_bytes()
        summary = json.loads(path.with_suffix(".json").read_text())
        result.read_errors += summary["errors"]
        stale_reads += [tuple(event) for event in summary["stale"]]
        result.reads += len(times)
        result.stale_reads += sum(stale)
        for started, bad in zip(times, stale, strict=True):
            if any(lo <= started <= hi for lo, hi in windows):
                result.reads_during += 1
                result.stale_during += bad
    timed = [event for event in stale_reads if event[1] is not None]
    if timed:
        ages = sorted(event[1] for event in timed)
        result.stale_percentiles = (
            ages[len(ages) // 2],
            ages[min(len(ages) - 1, int(len(ages) * 0.99))],
        )
        started, age, label = max(timed, key=lambda event: event[1])
        # The faults under way (within a second) when the version it missed was committed.
        committed = started - age
        kinds = sorted({w.kind for w in result.windows if w.start - 1 <= committed <= w.end + 1})
        result.longest_stale = age
        result.longest_stale_cause = f"{label}, committed during {', '.join(kinds) or 'no fault'}"


def _sample(say) -> None:
    """One tick of the consistency sampler (sync/ops/sampler.py), here rather than on the
    worker so it measures through every fault, the dead worker's included."""
    from django.db import DatabaseError, connection

    from sync.ops.sampler import sampler_tick

    try:
        sampler_tick()
    except DatabaseError as error:  # a pg_terminate fault may hit this process's backend
        say(f"sampler tick failed: {type(error).__name__}")
        connection.close()


def scan_for_canaries(result: ChaosResult, cache_url: str, logs: list[Path]) -> None:
    """Every Redis key and value (typed reads and DUMP), and every log file, for the run's
    PII canaries: the token in names, e-mails, streets, cities (and the encrypted order
    addresses), and the formatted phone numbers."""
    import redis

    tokens = [f"cnry{result.run}".encode(), f"(555) {run_digits(result.run)}-".encode()]
    client = redis.Redis.from_url(cache_url, socket_timeout=10)
    try:
        for key in client.scan_iter(count=1000):
            kind = client.type(key)
            blobs = [key, client.dump(key) or b""]
            if kind == b"hash":
                blobs += [b for pair in client.hgetall(key).items() for b in pair]
            elif kind == b"string":
                blobs.append(client.get(key) or b"")
            elif kind == b"stream":
                blobs += [
                    b for _id, entry in client.xrange(key) for pair in entry.items() for b in pair
                ]
            elif kind in (b"list", b"set", b"zset"):
                blobs += (
                    client.lrange(key, 0, -1)
                    if kind == b"list"
                    else list(client.smembers(key))
                    if kind == b"set"
                    else client.zrange(key, 0, -1)
                )
            if any(token in blob.lower() for blob in blobs for token in tokens):
                result.canaries_redis += 1
    finally:
        client.close()
    for path in logs:
        with contextlib.suppress(FileNotFoundError):
            text = path.read_bytes().lower()
            for number, line in enumerate(text.splitlines(), 1):
                if any(token in line for token in tokens):
                    result.canaries_logs.append(f"{path.name}:{number}")


def run_chaos(config: ChaosConfig, targets: Targets) -> ChaosResult:
    """One chaos run against ``targets``; Django must be set up on the same database and
    cache (``targets.env`` is what the child processes get)."""
    import logging

    import redis

    from sync.cache.connection import reset_clients
    from sync.cache.maintenance import verify_models, warm_models
    from sync.redaction import RedactPiiFilter

    rng = random.Random(config.seed)
    run = f"{rng.getrandbits(24):06x}"
    result = ChaosResult(config, run)
    workdir = targets.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    for old in {*workdir.glob("*.log"), *workdir.glob("reader*.*")}:
        old.unlink()
    orchestrator_log = workdir / "orchestrator.log"
    # Everything this process logs is scanned for canaries too (I6).
    handler = logging.FileHandler(orchestrator_log)
    handler.addFilter(RedactPiiFilter())
    logging.getLogger().addHandler(handler)

    def say(message: str) -> None:
        log(message)
        with orchestrator_log.open("a") as out:
            out.write(message + "\n")

    say(f"seed {config.seed} (run {run}); workdir {workdir}")
    if removed := remove_rows():
        say(f"removed {removed:,} rows of earlier chaos runs")
    targets.cache.start()  # running, and ours to flush
    flusher = redis.Redis.from_url(targets.cache.url, socket_timeout=5)
    flusher.flushall()
    flusher.close()
    reset_clients()
    result.canaries_planted = _prepare(config, run)
    fleet = Fleet(config, targets, run)
    injector = Injector(rng, fleet, targets.cache)
    try:
        fleet.start_worker()
        if not fleet.worker_ready():
            msg = f"the Celery worker did not start: {workdir / 'worker.log'}"
            raise RuntimeError(msg)
        for index in range(config.writers):
            fleet.start_child("writer", index)
        for index in range(config.readers):
            fleet.start_child("reader", index)
        start = time.monotonic()
        end, hard_end = start + config.duration, start + 3 * config.duration
        next_fault = start + rng.uniform(0.3, 1.0) * config.fault_gap
        next_replay = next_check = next_sample = start
        worker_dead_at = start + config.duration / 3 if config.worker_dead else None
        schedule: list[str] = []
        while True:
            now = time.monotonic()
            if now >= next_check:
                next_check = now + 1
                # A run proves nothing about a fault that never happened: every kind at least
                # once, and the writes asked for, before it ends (or at 3x its duration).
                every_kind = set(FAULTS) <= {w.kind for w in result.windows}
                if now >= hard_end or (
                    now >= end and every_kind and _committed()[0] >= config.min_writes
                ):
                    break
            if now >= next_replay:
                fleet.send_replay()
                next_replay = now + config.replay_interval
            fleet.revive()
            if config.sampler_interval and now >= next_sample:
                _sample(say)
                next_sample = time.monotonic() + config.sampler_interval
            if worker_dead_at is not None and now >= worker_dead_at:
                worker_dead_at = None
                say(f"fault worker_dead: the worker stays dead for {config.worker_dead:g} s")
                window = injector.inject("worker_dead")
                result.windows.append(window)
                say(
                    f"fault worker_dead for {window.end - window.start:.2f} s"
                    f" ({'proven' if window.proven else 'NOT proven'})"
                )
                next_fault = time.monotonic() + rng.uniform(0.5, 1.5) * config.fault_gap
            elif now >= next_fault:
                if not schedule:  # every kind once per round, in a seeded random order
                    schedule = list(FAULTS)
                    rng.shuffle(schedule)
                window = injector.inject(schedule.pop())
                result.windows.append(window)
                say(
                    f"fault {window.kind} for {window.end - window.start:.2f} s"
                    f" ({'proven' if window.proven else 'NOT proven'})"
                )
                next_fault = time.monotonic() + rng.uniform(0.5, 1.5) * config.fault_gap
            time.sleep(0.02)
        result.elapsed = time.monotonic() - start
        say("faults stopped; stopping writers and readers")
        fleet.stop(
            [f"writer{i}" for i in range(config.writers)]
            + [f"reader{i}" for i in range(config.readers)]
        )
        reset_clients()
        last_fault = max((w.end for w in result.windows), default=start)
        deadline = time.monotonic() + config.converge_timeout
        while time.monotonic() < deadline:
            done, result.dead_intents = _converged()
            if done:
                result.converge_s = time.monotonic() - last_fault
                break
            fleet.send_replay()
            time.sleep(config.replay_interval)
        say(f"converged {result.converge_s} s after the last fault; stopping the worker")
        fleet.stop(["worker"])
        result.crashes = fleet.crashes
    finally:
        fleet.kill_all()
        with contextlib.suppress(Exception):
            targets.cache.resume()
        targets.cache.start()
        logging.getLogger().removeHandler(handler)
        handler.close()
    reset_clients()
    result.writes, result.transactions, result.killed_after_commit = _committed()
    first = verify_models(list(LABELS))
    result.writes_lost = sum(r.stale + r.extra for r in first)
    result.lost_examples = [f"{r.label}: {r.examples}" for r in first if r.stale or r.extra]
    result.cold_keys = sum(r.missing for r in first)
    warm_models(list(LABELS))
    final = verify_models(list(LABELS))
    result.rows = sum(r.rows for r in final)
    result.after = (
        sum(r.stale for r in final),
        sum(r.missing for r in final),
        sum(r.extra for r in final),
    )
    _reads(result, workdir, config.readers)
    if config.sampler_interval:
        from sync.ops.sampler import consistency_figures

        figures = consistency_figures(over_seconds=result.elapsed + config.converge_timeout)
        result.sampler = {s: (w.samples, w.consistent) for s, w in figures.windows.items()}
    scan_for_canaries(result, targets.cache.url, [*workdir.glob("*.log"), targets.cache.logfile])
    return result

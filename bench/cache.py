"""Benchmark of the sync engine's cache layer: ``./dev bench cache``.

Measured side by side in one run, on the bench profile's own embedded PostgreSQL and Redis
(or DATABASE_URL / REDIS_URL), and printed as one table of medians and ratios against the goals:

* a cache-hit ``repository.get(Part, pk)`` against a raw redis-py HGETALL of the same key on the
  same client (goal ≤ 1.3x, issue 21) and against ``Part.objects.get(pk=…)`` on PostgreSQL;
* the same read through django-cacheops (a process of its own: ``bench/cacheops_read.py``);
* a synced single-row save in ``transaction.atomic()`` against the same save of a plain twin
  table with the same columns and no trigger (goal ≤ 1.5x), and 100 saves in one transaction
  (goal ≤ 1.15x); the synced figures include the on-commit write-through the caller waits for;
* replay of 100k pending intents and warming after FLUSHDB, each against its floor measured in
  the same run on the same keys (``bench/floors.py``: the payloads ready, pipelined EVALSHA of
  the CAS script in the engine's batches), goal ≥ 0.5x, with the CPU of every process.

Each section also prints the CPU seconds every process spent on it (this one, PostgreSQL's
backends, Redis: ``bench/processes.py``) and the load average, so a slow machine shows apart
from a slow path.

Options: ``--quick`` (a tenth of the work, to try the script), ``--profile SECTION`` (where one
engine path spends its time: by round trip, then cProfile; see ``bench/profiling.py``),
``--only SECTION`` (repeatable: those sections alone).

It creates and removes its own rows (SKUs ``bench:…``) and its twin table (``bench/fixtures.py``);
nothing here asserts on a timing.
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import operator
import os
import subprocess
import sys
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.fixtures import (
    LABEL,
    Pools,
    Sizes,
    batch_saver,
    clear_cache,
    create_outage,
    create_plain_table,
    drain_intents,
    log,
    make_pools,
    muted,
    pending_intents,
    remove_rows,
    saver,
    touch_outage_rows,
    vacuum,
)
from bench.floors import floor_row, outage_floor, read_write_floor, table_floor, write_floor
from bench.harness import (
    ROOT,
    Environment,
    Row,
    Samples,
    Table,
    interleaved,
    machine_lines,
    ratio_row,
    setup_django,
    timed,
)
from bench.processes import Processes, Usage

SECTIONS = ("read", "save", "batch", "replay", "warm")

# Issue 21's goals, as ratios to the floor measured in the same run; today's ratio is
# printed first (the "ratio" column), the goal beside it.
READ_GOAL, SAVE_GOAL, BATCH_GOAL = 1.3, 1.5, 1.15
# replay and warm: a ratio to the pipelined-EVALSHA floor of the same keys
REPLAY_GOAL, WARM_GOAL = 0.5, 0.5


# --------------------------------------------------------------------------- the sections


def hit_count() -> float:
    from prometheus_client import REGISTRY

    return (
        REGISTRY.get_sample_value("sync_cache_reads_total", {"model": LABEL, "outcome": "hit"})
        or 0.0
    )


def _row(
    measurement: str,
    found: Samples,
    baseline_name: str,
    baseline: Samples,
    *,
    goal: float | None = None,
    unit: str = "µs",
) -> Row:
    scale = 1000 if unit == "ms" else 1
    return ratio_row(
        measurement,
        found.wall_us / scale,
        baseline_name,
        baseline.wall_us / scale,
        goal=goal,
        unit=unit,
        cpu=found.cpu_us / scale,
        baseline_cpu=baseline.cpu_us / scale,
    )


def _save_why(found: dict[str, Samples], unit: str, section: str) -> str:
    """Where a synced save's time goes beyond a plain one: the triggers (the triggers-only
    pass) and the write-through after COMMIT (the rest), wall and this process's CPU."""
    scale = 1000 if unit == "ms" else 1
    plain, synced, triggers = found["plain"], found["synced"], found["triggers only"]

    def extra(a: Samples, b: Samples) -> str:
        return (
            f"{(a.wall_us - b.wall_us) / scale:+,.1f} {unit} "
            f"(CPU of this process {(a.cpu_us - b.cpu_us) / scale:+,.1f})"
        )

    return (
        f"triggers alone {triggers.wall_us / plain.wall_us:.2f}x plain, {extra(triggers, plain)}; "
        f"the write-through after COMMIT {extra(synced, triggers)}; "
        f"./dev bench cache --profile {section} breaks it down by round trip"
    )


def _base(measurement: str, found: Samples, unit: str = "µs") -> Row:
    scale = 1000 if unit == "ms" else 1
    return Row(
        measurement,
        f"{found.wall_us / scale:,.1f} {unit}",
        cpu=f"{found.cpu_us / scale:,.1f} {unit}",
    )


def bench_reads(table: Table, pools: Pools, sizes: Sizes, processes: Processes) -> None:
    from catalog.models import Part
    from sync.cache import connection as redis_connection
    from sync.cache import repository, store
    from sync.cache.keys import cache_key

    pks = [part.pk for part in pools.read]
    keys = [cache_key(LABEL, pk) for pk in pks]
    client = redis_connection.client()  # the engine's own client and connection pool
    count = len(pks)
    redis_ops = {
        "hgetall": lambda i: client.hgetall(keys[i % count]),
        "store.read_row": lambda i: store.read_row(keys[i % count]),
        "repository": lambda i: repository.get(Part, pks[i % count]),
    }
    database_ops = {
        "repository": redis_ops["repository"],
        "orm": lambda i: Part.objects.get(pk=pks[i % count]),
    }
    log(f"reads: {sizes.reads:,} x {len(redis_ops)} Redis reads, interleaved …")
    hits = hit_count()
    with processes.measure("the cache-hit loop") as usage:
        found = interleaved(redis_ops, n=sizes.reads, warmup=sizes.read_warmup)
    table.notes.append(usage.describe())
    hit_share = (hit_count() - hits) / (sizes.reads + sizes.read_warmup)
    log(f"reads: {sizes.reads:,} x 2, repository.get and the ORM, interleaved …")
    with processes.measure("the hit-vs-PostgreSQL loop") as usage:
        against_db = interleaved(database_ops, n=sizes.reads, warmup=sizes.read_warmup)
    table.notes.append(usage.describe())
    table.section(
        f"cache-hit read, µs per call: median of {sizes.reads:,} interleaved, "
        f"{count:,} rows; repository hits {hit_share:.1%}"
    )
    table.add(_base("raw HGETALL of the key (redis-py, the engine's client)", found["hgetall"]))
    table.add(
        _row(
            "repository.get(Part, pk), cache hit",
            found["repository"],
            "HGETALL",
            found["hgetall"],
            goal=READ_GOAL,
        )
    )
    table.add(
        _row(
            "  diagnostic: store.read_row alone (HMGET, breaker)",
            found["store.read_row"],
            "HGETALL",
            found["hgetall"],
        )
    )
    table.section(
        f"the same hit against PostgreSQL: a second loop, {sizes.reads:,} of each, interleaved"
    )
    table.add(_base("Part.objects.get(pk=…) on PostgreSQL", against_db["orm"]))
    table.add(
        _row(
            "repository.get(Part, pk), cache hit",
            against_db["repository"],
            "ORM get",
            against_db["orm"],
        )
    )


def bench_cacheops(table: Table, pools: Pools, sizes: Sizes) -> None:
    """django-cacheops in its own process (it patches every queryset and hooks every save)."""
    args = {"pks": [part.pk for part in pools.read], "n": sizes.reads, "warmup": sizes.read_warmup}
    log(f"cacheops: {sizes.reads:,} x 3 operations in a process of its own …")
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "cacheops_read.py"), json.dumps(args)],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    if result.returncode != 0:
        table.section("django-cacheops: FAILED to run (its stderr follows the table)")
        table.notes.append("cacheops stderr:\n" + result.stderr[-3000:])
        return
    report = json.loads(result.stdout.strip().splitlines()[-1])
    found = {
        name: Samples(wall=[int(us * 1000)], cpu=[int(cpu * 1000)])
        for name, (us, cpu) in report["medians_us"].items()
    }
    queries = report["cacheops_queries_on_rereading_all_rows"]
    table.section(
        f"the same read through django-cacheops {report['cacheops']} on Django "
        f"{report['django']}, same Redis, own process: median of {report['n']:,}; "
        f"{queries} queries re-reading all rows"
    )
    table.add(_base("raw HGETALL of the key (in that process)", found["hgetall"]))
    table.add(
        _row(
            "repository.get(Part, pk), cache hit (in that process)",
            found["repository"],
            "HGETALL",
            found["hgetall"],
        )
    )
    hit = _row(
        "cacheops Part.objects.get(pk=…), cache hit", found["cacheops"], "HGETALL", found["hgetall"]
    )
    if queries:
        hit.verdict = "NOT cached: it queried PostgreSQL"
    table.add(hit)
    table.add(
        _row(
            "repository.get(Part, pk), cache hit (in that process)",
            found["repository"],
            "cacheops",
            found["cacheops"],
        )
    )


def _statements(operation) -> list[str]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        operation(0)
    return [query["sql"].split()[0] for query in queries.captured_queries]


def bench_saves(table: Table, pools: Pools, sizes: Sizes, processes: Processes) -> None:
    ops = {
        "plain": saver(pools.plain),
        "synced": saver(pools.synced),
        "triggers only": muted(saver(pools.triggers_only)),
    }
    log(f"single-row saves: {sizes.saves:,} x {len(ops)} transactions, interleaved …")
    with processes.measure("the single-row saves") as usage:
        found = interleaved(ops, n=sizes.saves, warmup=sizes.save_warmup)
    table.notes.append(usage.describe())
    statements = {name: _statements(op) for name, op in ops.items()}
    drain_intents()
    table.section(
        f"single-row save in transaction.atomic(), µs per transaction: median of "
        f"{sizes.saves:,} interleaved, {sizes.save_rows} rows each"
    )
    table.add(_base("plain ORM save, twin table (same columns, no trigger)", found["plain"]))
    synced = _row(
        "synced Part save, incl. on-commit write-through",
        found["synced"],
        "plain",
        found["plain"],
        goal=SAVE_GOAL,
    )
    synced.why = _save_why(found, "µs", "save")
    table.add(synced)
    table.add(
        _row(
            "  diagnostic: synced save, triggers only (no write-through)",
            found["triggers only"],
            "plain",
            found["plain"],
        )
    )
    table.notes.append(
        "statements of one single-row transaction: "
        + "; ".join(f"{name}: {' '.join(sql)}" for name, sql in statements.items())
    )


def bench_batches(table: Table, pools: Pools, sizes: Sizes, processes: Processes) -> None:
    ops = {
        "plain": batch_saver(pools.plain_batch),
        "synced": batch_saver(pools.synced_batch),
        "triggers only": muted(batch_saver(pools.triggers_only_batch)),
    }
    log(f"{sizes.batch_size}-row transactions: {sizes.batches:,} x {len(ops)}, interleaved …")
    with processes.measure(f"the {sizes.batch_size}-row transactions") as usage:
        found = interleaved(ops, n=sizes.batches, warmup=sizes.batch_warmup)
    table.notes.append(usage.describe())
    drain_intents()
    table.section(
        f"{sizes.batch_size} saves in one transaction.atomic(), ms per transaction: "
        f"median of {sizes.batches:,} interleaved"
    )
    table.add(_base("plain ORM saves, twin table", found["plain"], unit="ms"))
    synced = _row(
        f"synced Part saves, incl. write-through of {sizes.batch_size} keys",
        found["synced"],
        "plain",
        found["plain"],
        goal=BATCH_GOAL,
        unit="ms",
    )
    synced.why = _save_why(found, "ms", "batch")
    table.add(synced)
    table.add(
        _row(
            "  diagnostic: synced saves, triggers only (no write-through)",
            found["triggers only"],
            "plain",
            found["plain"],
            unit="ms",
        )
    )


@dataclass
class Measured:
    """One timed pass: items per second, this process' CPU share, CPU of every process."""

    rate: float
    cpu_share: float
    usage: Usage


def measured(processes: Processes, label: str, operation, items=len) -> tuple[Measured, object]:
    """Time ``operation``; ``items(result)`` is how many items it did.

    A full collection first, untimed: the garbage collector's collection of the whole heap
    (over 100 ms here, with the read and save pools alive) falls on whichever pass allocates
    past its threshold, and a pass would pay for what the setup before it (the outage rows,
    the floor's prepared batches) left; each pass starts even instead."""
    gc.collect()
    with processes.measure(label) as usage:
        seconds, cpu, result = timed(operation)
    return Measured(items(result) / seconds, cpu / seconds, usage), result


def _per_item(found: Measured) -> str:
    """CPU µs per item of each process group of one timed pass."""
    items = found.rate * found.usage.wall
    if not items:
        return "not measured"
    return ", ".join(
        f"{name} {seconds * 1e6 / items:.0f} µs"
        for name, seconds in found.usage.cpu.items()
        if seconds >= 0.005 or name != "child processes"
    )


def floor_rows(
    table: Table,
    runs: list[dict[str, Measured]],
    *,
    name: str,
    measurement: str,
    unit: str,
    goal: float,
    batch: int,
) -> None:
    """The engine's figure as a ratio to the floor of the same run (median run by ratio),
    the floors themselves, and the CPU of every process in that run."""
    ratios = [run[name].rate / run["floor"].rate for run in runs]
    middle = sorted(range(len(runs)), key=ratios.__getitem__)[len(runs) // 2]
    run = runs[middle]
    table.add(
        floor_row(
            f"floor: pipelined EVALSHA of cas_write.lua, same keys, batches of {batch:,}",
            run["floor"].rate,
            run["floor"].rate,
            unit,
            cpu_share=run["floor"].cpu_share,
        )
    )
    table.add(
        floor_row(
            "  floor + one set-based PostgreSQL read and the encoding per batch",
            run["read floor"].rate,
            run["floor"].rate,
            unit,
            cpu_share=run["read floor"].cpu_share,
        )
    )
    row = floor_row(
        measurement,
        run[name].rate,
        run["floor"].rate,
        unit,
        goal=goal,
        cpu_share=run[name].cpu_share,
    )
    item = unit.rstrip("s")
    row.why = (
        f"CPU per {item}: {_per_item(run[name])}; the floor's {_per_item(run['floor'])}; "
        f"the floor + read's {_per_item(run['read floor'])}; "
        f"./dev bench cache --profile {name} breaks it down"
    )
    table.add(row)
    table.notes.append(
        f"{name}, ratio to the floor per run, in order: "
        + ", ".join(f"{ratio:.2f}x" for ratio in ratios)
    )
    table.notes.extend(measured.usage.describe() for measured in run.values())


def bench_replay(table: Table, sizes: Sizes, processes: Processes) -> None:
    from django.conf import settings

    from sync.cache import store
    from sync.cache.replay import replay_pending

    log(f"replay: creating {sizes.outage:,} rows with their intents pending …")
    create_seconds, _cpu, _ = timed(lambda: create_outage(sizes))
    batch = settings.SYNC_REPLAY_BATCH
    runs: list[dict[str, Measured]] = []
    claimed, batches = 0, 0
    for run in range(sizes.runs):
        if run:
            touch_outage_rows()
        vacuum()
        pending = pending_intents()
        log(f"replay run {run + 1}/{sizes.runs}: {pending:,} pending intents, then the floors …")
        found: dict[str, Measured] = {}
        found["replay"], result = measured(
            processes,
            f"replay run {run + 1}",
            functools.partial(replay_pending, include_not_due=True),
            items=operator.attrgetter("written"),
        )
        claimed, batches = result.claimed, result.batches
        if result.failed or pending_intents():
            table.notes.append(f"replay run {run + 1}: {result} — queue not empty afterwards")
        # The floors rewrite the same keys at the versions replay has just written.
        floor = outage_floor(batch_size=batch, source=store.REPLAY)
        found["floor"], _ = measured(
            processes, "its floor", functools.partial(write_floor, floor), items=int
        )
        found["read floor"], _ = measured(
            processes, "its floor + read", functools.partial(read_write_floor, floor), items=int
        )
        runs.append(found)
    table.section(
        f"replay of {sizes.outage:,} pending intents (replay_pending, batches of "
        f"{claimed // max(batches, 1):,}) against the floor of the same keys, each run "
        f"measured with its floors, median of {sizes.runs} by ratio; intents/s in order: "
        + ", ".join(f"{run['replay'].rate:,.0f}" for run in runs)
    )
    floor_rows(
        table,
        runs,
        name="replay",
        measurement="replay until the queue is empty",
        unit="intents",
        goal=REPLAY_GOAL,
        batch=batch,
    )
    table.notes.append(
        f"creating the {sizes.outage:,} outage rows (bulk_create with both "
        f"triggers) took {create_seconds:.1f} s"
    )


def bench_warm(table: Table, sizes: Sizes, env: Environment, processes: Processes) -> None:
    from django.conf import settings

    from sync.cache import store
    from sync.cache.maintenance import verify_models, warm_models

    batch = settings.SYNC_WARM_BATCH
    runs: list[dict[str, Measured]] = []
    rows, how = 0, ""
    vacuum()
    floor = table_floor(batch_size=batch, source=store.WARM)
    for run in range(sizes.runs):
        log(f"warm run {run + 1}/{sizes.runs} and its floors, each after a flush …")
        found: dict[str, Measured] = {}
        # Each pass starts from an empty cache, so each creates the keys, as a warm does.
        how = clear_cache(own_server="cache" in env.embedded)
        found["floor"], _ = measured(
            processes, "warm's floor", functools.partial(write_floor, floor), items=int
        )
        clear_cache(own_server="cache" in env.embedded)
        found["read floor"], _ = measured(
            processes, "warm's floor + read", functools.partial(read_write_floor, floor), items=int
        )
        clear_cache(own_server="cache" in env.embedded)
        found["warm"], _ = measured(
            processes,
            f"warm run {run + 1}",
            functools.partial(warm_models, [LABEL]),
            items=lambda progress: progress[0].done,
        )
        runs.append(found)
    rows = floor.rows
    table.section(
        f"warm {LABEL} after {how}: {rows:,} rows, against the floor of the same keys (each "
        f"pass after a flush), median of {sizes.runs} by ratio; rows/s in order: "
        + ", ".join(f"{run['warm'].rate:,.0f}" for run in runs)
    )
    floor_rows(
        table,
        runs,
        name="warm",
        measurement="warm (sync_warm's service)",
        unit="rows",
        goal=WARM_GOAL,
        batch=batch,
    )
    log("verifying Redis against PostgreSQL …")
    table.notes.append(f"after the run, sync_verify: {verify_models([LABEL])[0]}")


# --------------------------------------------------------------------------- header, profile


def code_version() -> str:
    """The commit measured, and whether the engine's files differ from it."""

    def git(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True
            ).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return ""

    commit = git("log", "-1", "--format=%h %s")
    if not commit:
        return "code: not a git checkout"
    dirty = git("status", "--porcelain", "--", "sync", "catalog", "config")
    return f"code: {commit[:72]}" + (
        " + UNCOMMITTED changes in sync/catalog/config" if dirty else ""
    )


def header(env: Environment) -> list[str]:
    from django.db import connection

    from sync.cache import connection as redis_connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_setting('server_version'), current_setting('fsync'),"
            " current_setting('synchronous_commit')"
        )
        pg_version, fsync, sync_commit = cursor.fetchone()
    info = redis_connection.client().info("server")
    where = {
        name: "embedded, .run/bench" if name in env.embedded else "from the environment"
        for name in ("database", "cache")
    }
    return [
        *machine_lines(),
        code_version(),
        (
            f"Django {version('django')}, psycopg {version('psycopg')}, "
            f"redis-py {version('redis')} + hiredis {version('hiredis')}"
        ),
        (
            f"PostgreSQL {pg_version} ({where['database']}; fsync {fsync}, "
            f"synchronous_commit {sync_commit})"
        ),
        f"Redis {info['redis_version']} ({where['cache']})",
    ]


def profile_section(section: str, pools: Pools, sizes: Sizes, env: Environment) -> None:
    """The engine's side of one section, broken down by round trip, then cProfiled."""
    from bench.profiling import profile
    from catalog.models import Part
    from sync.cache import repository
    from sync.cache.maintenance import warm_models
    from sync.cache.replay import replay_pending

    pks = [part.pk for part in pools.read]
    save, save_batch = saver(pools.synced), batch_saver(pools.synced_batch)
    outage = {"created": False}

    def pending_outage() -> None:
        if outage["created"]:
            touch_outage_rows()
        else:
            create_outage(sizes)
            outage["created"] = True
        vacuum()

    def cold_cache() -> None:
        if not outage["created"]:
            pending_outage()
            drain_intents()
        vacuum()
        clear_cache(own_server="cache" in env.embedded)

    def nothing() -> None:
        return None

    targets = {
        "read": (
            nothing,
            lambda: [repository.get(Part, pks[i % len(pks)]) for i in range(sizes.reads)],
            sizes.reads,
            "read",
        ),
        "save": (nothing, lambda: [save(i) for i in range(sizes.saves)], sizes.saves, "save"),
        "batch": (
            nothing,
            lambda: [save_batch(i) for i in range(sizes.batches)],
            sizes.batches,
            "transaction",
        ),
        "replay": (
            pending_outage,
            lambda: replay_pending(include_not_due=True),
            sizes.outage,
            "intent",
        ),
        "warm": (cold_cache, lambda: warm_models([LABEL]), sizes.outage, "row"),
    }
    prepare, target, operations, unit = targets[section]
    profile(section, prepare, target, operations, unit)


# --------------------------------------------------------------------------- main


def run(args: argparse.Namespace, env: Environment) -> int:
    from django.core.management import call_command

    sizes = Sizes.quick() if args.quick else Sizes()
    call_command("migrate", verbosity=0)
    if leftover := remove_rows():
        log(f"removed {leftover:,} rows left by an earlier, interrupted run")
    create_plain_table()
    try:
        pools = make_pools(sizes)
        if args.profile:
            profile_section(args.profile, pools, sizes, env)
            return 0
        table = Table(
            "syncops cache benchmark (bench/cache.py; ./dev bench cache"
            + (" --quick" if args.quick else "")
            + ")\n"
            + "\n".join(header(env))
        )
        processes = Processes.discover()
        table.notes.append(processes.names())
        sections = {
            "read": lambda: (
                bench_reads(table, pools, sizes, processes),
                bench_cacheops(table, pools, sizes),
            ),
            "save": lambda: bench_saves(table, pools, sizes, processes),
            "batch": lambda: bench_batches(table, pools, sizes, processes),
            "replay": lambda: bench_replay(table, sizes, processes),
            "warm": lambda: bench_warm(table, sizes, env, processes),
        }
        try:
            for name, section in sections.items():
                if not args.only or name in args.only:
                    section()
        finally:
            load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
            table.notes.append(f"load average at the end: {load}")
            print(table.render())  # what was measured, even when a later section failed
    finally:
        log("removing the benchmark's rows, keys and twin table …")
        remove_rows()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of the work")
    parser.add_argument(
        "--profile",
        choices=SECTIONS,
        help="where one engine path spends its time, instead of the table",
    )
    parser.add_argument(
        "--only",
        choices=SECTIONS,
        action="append",
        help="run this section only (repeatable); every section by default",
    )
    args = parser.parse_args(argv)
    env = setup_django()
    try:
        return run(args, env)
    finally:
        for name in env.stop():
            log(f"stopped the embedded {name} server of the bench profile")


if __name__ == "__main__":
    sys.exit(main())

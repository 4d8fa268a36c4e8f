"""Where the time of one engine path goes (``./dev bench cache --profile SECTION``).

Two passes over the same workload: first a breakdown of wall time by round trip (each SQL
statement by verb and table, each COMMIT, each Redis operation of the engine, the rest being
Python in this process), then cProfile's top functions. Instrumentation is bench-only: it wraps
Django's cursor with ``connection.execute_wrapper`` and the engine's ``connection.run`` and
restores both afterwards; nothing under ``sync/`` changes.
"""

from __future__ import annotations

import contextlib
import cProfile
import pstats
import re
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator

_TABLE = re.compile(r"\b(?:FROM|INTO|UPDATE)\s+\"?(\w+)", re.IGNORECASE)


def _statement(sql: str) -> str:
    verb = sql.split(None, 1)[0].upper()
    table = _TABLE.search(sql)
    return f"SQL {verb} {table.group(1) if table else ''}".rstrip()


class Breakdown:
    def __init__(self) -> None:
        self.calls: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # name -> [count, ns]

    def add(self, name: str, elapsed_ns: int) -> None:
        entry = self.calls[name]
        entry[0] += 1
        entry[1] += elapsed_ns

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        from django.db import connections

        from sync.cache import connection as redis_connection
        from sync.cache.ahead import ReadAhead

        clock = time.perf_counter_ns
        conn = connections["default"]

        def on_sql(execute, sql, params, many, context):
            start = clock()
            try:
                return execute(sql, params, many, context)
            finally:
                self.add(_statement(sql), clock() - start)

        from sync.cache import outbox

        original_commit, original_run = conn.commit, redis_connection.run
        original_prepared = outbox.prepared_fetchall

        def prepared(connection, sql, params):
            # the write-through's read: a psycopg cursor of its own, past execute_wrapper
            start = clock()
            try:
                return original_prepared(connection, sql, params)
            finally:
                self.add(_statement(sql) + " (prepared)", clock() - start)

        def commit() -> None:
            start = clock()
            try:
                # NOTE: Django runs on_commit callbacks after the COMMIT itself, inside
                # set_autocommit(True); this times the COMMIT round trip alone.
                original_commit()
            finally:
                self.add("COMMIT", clock() - start)

        def run(operation, **options):
            start = clock()
            try:
                return original_run(operation, **options)
            finally:
                self.add(f"Redis {operation.__qualname__.split('.')[0]}", clock() - start)

        # NOTE: replay and warm read ahead on a thread of their own (sync.cache.ahead), whose
        # statements this process' connection does not see: the time the caller waits for
        # the next batch is counted instead.
        original_next = ReadAhead.__next__

        def next_batch(reader):
            start = clock()
            try:
                return original_next(reader)
            finally:
                self.add("waiting for the batch read ahead (thread)", clock() - start)

        conn.commit = commit
        redis_connection.run = run
        outbox.prepared_fetchall = prepared
        ReadAhead.__next__ = next_batch
        try:
            with conn.execute_wrapper(on_sql):
                yield
        finally:
            del conn.commit
            redis_connection.run = original_run
            outbox.prepared_fetchall = original_prepared
            ReadAhead.__next__ = original_next

    def render(self, wall_ns: int, operations: int, unit: str) -> str:
        lines = [
            (
                f"{'component':44} {'calls':>9} {'total ms':>10} {'share':>6} "
                f"{'µs/call':>9} {'µs/' + unit:>9}"
            )
        ]
        measured = 0
        for name, (count, ns) in sorted(self.calls.items(), key=lambda item: -item[1][1]):
            measured += ns
            lines.append(
                f"{name:44} {count:9,} {ns / 1e6:10,.1f} {ns / wall_ns:6.1%} "
                f"{ns / count / 1e3:9,.1f} {ns / operations / 1e3:9,.1f}"
            )
        rest = wall_ns - measured
        lines.append(
            f"{'Python in this process (the rest)':44} {'':9} {rest / 1e6:10,.1f} "
            f"{rest / wall_ns:6.1%} {'':9} {rest / operations / 1e3:9,.1f}"
        )
        lines.append(
            f"{'wall':44} {'':9} {wall_ns / 1e6:10,.1f} {1:6.0%} {'':9} "
            f"{wall_ns / operations / 1e3:9,.1f}"
        )
        return "\n".join(lines)


def redis_command_stats() -> dict[str, tuple[int, int]]:
    """Calls and server-side µs per command so far (``INFO commandstats``)."""
    from sync.cache import connection as redis_connection

    stats = redis_connection.client().info("commandstats")
    return {
        name.removeprefix("cmdstat_"): (found["calls"], found["usec"])
        for name, found in stats.items()
    }


def render_server_time(
    before: dict[str, tuple[int, int]],
    after: dict[str, tuple[int, int]],
    wall_ns: int,
    operations: int,
    unit: str,
) -> str:
    lines = []
    for command, (calls, usec) in sorted(after.items(), key=lambda item: -item[1][1]):
        calls -= before.get(command, (0, 0))[0]
        usec -= before.get(command, (0, 0))[1]
        if calls > 0:
            lines.append(
                f"{'Redis server: ' + command.upper():44} {calls:9,} "
                f"{usec / 1e3:10,.1f} {usec * 1e3 / wall_ns:6.1%} "
                f"{usec / calls:9,.1f} {usec / operations:9,.1f}"
            )
    return "\n".join(lines)


def profile(
    name: str, prepare: Callable[[], None], target: Callable[[], object], operations: int, unit: str
) -> None:
    """Print the breakdown and the cProfile of ``target`` (``prepare`` runs before each pass)."""
    breakdown = Breakdown()
    prepare()
    before = redis_command_stats()
    with breakdown.installed():
        start = time.perf_counter_ns()
        target()
        wall = time.perf_counter_ns() - start
    after = redis_command_stats()
    print(f"== {name}: wall time by round trip ({operations:,} {unit}s, no profiler)")
    print(breakdown.render(wall, operations, unit))
    print("of which inside Redis (INFO commandstats; EVALSHA includes the commands it calls):")
    print(render_server_time(before, after, wall, operations, unit))
    prepare()
    profiler = cProfile.Profile()
    profiler.runcall(target)
    print(f"\n== {name}: cProfile (adds its own overhead to Python time)")
    stats = pstats.Stats(profiler, stream=sys.stdout)
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(40)

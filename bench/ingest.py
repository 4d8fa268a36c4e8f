"""Benchmark of spreadsheet ingestion: ``./dev bench ingest``.

Measured in one run, on the bench profile's embedded PostgreSQL and Redis (or DATABASE_URL /
REDIS_URL), each figure beside its floor, the same rows through the minimum set-based path
(``bench/ingest_floor.py``), on the same servers a moment apart:

* new rows from a 100k-row buyers CSV, the full pipeline (validate, compare, upsert, intents,
  record logs, write-through to Redis, verify) at the default batch size and at 1,000, against
  the same-work floor (goal ≥ 0.5x); plain ``COPY`` of the file and django-import-export
  (the ``bench`` extra, on 10k rows: at its speed 100k would take minutes) as references;
* re-ingesting the same unchanged 100k rows against the unchanged floor (goal ≥ 0.7x);
* the 4,140-row incident sheet end to end (goal < 0.5 s), and a 100k-row XLSX through
  today's path (openpyxl, in the run's process) and the new one (python-calamine, the reader
  process) in the same run (goal ≥ 3x), with the CPU of every process, and reading alone;
* peak RSS of a run on 10k, 100k and 1M-row CSVs, each in a process of its own, and of its
  reader process (goal: flat, < 150 MB at 1M); the 100k file also without the reader process.

Every measurement notes its wall time, the CPU seconds of each process group (this process and
its children, PostgreSQL, Redis: ``bench/processes.py``) and the load average; a missed goal
notes where the run's time went (its phases) beside the floor's.

Options: ``--quick`` (a tenth of the sizes), ``--batch-size N`` (default: the source's).
Buyers are deleted before each measurement; nothing asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import (
    ROOT,
    Row,
    Table,
    cpu_line,
    machine_lines,
    setup_django,
    shown_ratio,
)
from bench.harness import floor_row as harness_floor_row
from devtools.sheets import (
    BUYER_FIELDS,
    BUYER_HEADERS,
    buyer_rows,
    incident_buyers,
    write_csv,
    write_xlsx,
)


def _reset() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE buyers, sync_record_logs, sync_error_logs, retry_queue")
        cursor.execute("DELETE FROM sync_retry_queue WHERE model = 'buyers.buyer'")
        # Every measurement starts from the same state: 100k intents in and out per run
        # outpace autovacuum on two cores (as in bench/cache.py).
        cursor.execute("VACUUM ANALYZE sync_retry_queue")
    # The buyers' cache keys too: every measurement starts from the same (empty) Redis side,
    # and the runs' keys (new ids each time) do not pile up in the bench Redis.
    from sync.cache import connection as redis_connection
    from sync.cache.keys import model_pattern

    client = redis_connection.client(bulk=True)
    batch: list = []
    for key in client.scan_iter(match=model_pattern("buyers.buyer"), count=10_000):
        batch.append(key)
        if len(batch) >= 10_000:
            client.unlink(*batch)
            batch.clear()
    if batch:
        client.unlink(*batch)


def _ingest(path: Path, batch_size: int | None = None):
    from sync.ingest.pipeline import run_ingest

    start = time.perf_counter()
    run = run_ingest("buyers", file=str(path), batch_size=batch_size)
    return time.perf_counter() - start, run


def _copy(path: Path) -> float:
    from django.db import connection

    columns = ", ".join(f"c{i} text" for i in range(len(BUYER_HEADERS)))
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TEMP TABLE IF NOT EXISTS bench_copy ({columns})")
        cursor.execute("TRUNCATE bench_copy")
        start = time.perf_counter()
        with (
            path.open("rb") as handle,
            cursor.copy("COPY bench_copy FROM STDIN WITH (FORMAT csv, HEADER true)") as copy,
        ):
            while data := handle.read(1 << 20):
                copy.write(data)
        return time.perf_counter() - start


def _import_export(path: Path, rows: int) -> float | None:
    try:
        import tablib
        from import_export import fields, resources
    except ImportError:
        return None
    from django.utils import timezone

    from buyers.models import Buyer

    names = BUYER_FIELDS

    class BuyerResource(resources.ModelResource):
        class Meta:
            model = Buyer
            import_id_fields = ("buyer_number",)
            fields = names
            skip_unchanged = True

        def before_save_instance(self, instance, row, **kwargs):
            now = timezone.now()
            instance.created_at = instance.created_at or now
            instance.synced_at = instance.db_updated_at = now

    for header, name in zip(BUYER_HEADERS, names, strict=True):
        BuyerResource.fields[name] = fields.Field(attribute=name, column_name=header)
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)[: rows + 1]
    dataset = tablib.Dataset().load("".join(lines), format="csv")
    start = time.perf_counter()
    result = BuyerResource().import_data(dataset, raise_errors=False)
    elapsed = time.perf_counter() - start
    if result.has_errors() or result.has_validation_errors():
        print("django-import-export reported errors", file=sys.stderr)
    return elapsed


def _rss(path: Path, reader_rows: int | None = None) -> dict:
    """Peak RSS (MB) of a child process running one ingest of ``path``, and of its reader
    process if it had one (``reader_rows``: SYNC_INGEST_READER_PROCESS_ROWS, None: the
    default; 0: no reader process).

    NOTE: VmHWM (the peak of the process's own memory), not ``getrusage().ru_maxrss``: Linux
    carries ru_maxrss across exec, so a child would report at least the RSS this (parent)
    process had when it forked — the flat ~175 MB this table used to show.
    """
    code = (
        f"import sys; sys.path.insert(0, {str(ROOT)!r})\n"
        "from bench.harness import setup_django; setup_django()\n"
        "from bench.ingest import _reset, _ingest; _reset()\n"
        f"seconds, run = _ingest(__import__('pathlib').Path({str(path)!r}))\n"
        "hwm = next(int(line.split()[1]) for line in open('/proc/self/status')"
        " if line.startswith('VmHWM:'))\n"
        "from sync.ingest.pipeline import reader\n"
        "child = reader.last_stats.peak_rss_kb / 1024 if reader.last_stats else None\n"
        "import json; print(json.dumps({'rss': hwm / 1024, 'reader_rss': child,"
        " 'seconds': seconds, 'status': run.status, 'rows': run.rows_done}))"
    )
    env = dict(os.environ)
    if reader_rows is not None:
        env["SYNC_INGEST_READER_PROCESS_ROWS"] = str(reader_rows)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT, env=env
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def _phases(run) -> str:
    return ", ".join(f"{k} {v / 1000:.2f}s" for k, v in run.phase_ms.items())


def _floor_phases(floor) -> str:
    return ", ".join(f"{k} {v:.2f}s" for k, v in floor.phases.items())


def _row(
    measurement: str,
    ratio: str = "",
    goal: str = "",
    verdict: str = "",
    figure: str = "",
    compared: str = "",
) -> Row:
    """A row of this table, in its columns' order: the ratio first, then the figure."""
    return Row(measurement, figure, compared, ratio, goal, verdict)


def floor_row(
    measurement: str, rows: int, seconds: float, floor_seconds: float, goal: float
) -> Row:
    """A row that leads with the ratio to the same-work floor (higher is better)."""
    return harness_floor_row(measurement, rows / seconds, "floor", rows / floor_seconds, goal)


def _rss_row(table: Table, size: int, found: dict, reader_rows: int | None) -> None:
    reader = found["reader_rss"]
    where = (
        f"run {found['rss']:.0f} MB + reader {reader:.0f} MB"
        if reader is not None
        else f"run {found['rss']:.0f} MB, no reader process"
    )
    million = size >= 1_000_000
    table.add(
        Row(
            f"{size:,} rows" + (", in the run's process" if reader_rows == 0 else ""),
            f"{found['rss']:.0f} MB",
            f"{size / found['seconds']:,.0f} rows/s",
            where,
            "< 150 MB (each)" if million else "flat",
            ("met" if max(found["rss"], reader or 0) < 150 else "MISSED") if million else "",
        )
    )


def _xlsx_rows(table: Table, folder: Path, n: int, batch: int | None) -> None:
    """The same n-row XLSX through today's path (openpyxl, in the run's process) and the new
    one (python-calamine; in the run's process, the default, and with the reader process), in
    this run; and reading alone, both readers."""
    from django.conf import settings

    from bench.processes import Processes
    from sync.ingest.pipeline import reader
    from sync.ingest.sources import XlsxSource

    xlsx_path = write_xlsx(folder / "buyers.xlsx", BUYER_HEADERS, buyer_rows(n, 0))
    processes = Processes.discover()
    saved = settings.SYNC_INGEST_XLSX_READER, settings.SYNC_INGEST_READER_PROCESS_ROWS
    rates, spent = {}, {}
    try:
        for label, xlsx_reader, least in (
            ("openpyxl, in the run's process (before)", "openpyxl", 0),
            ("python-calamine, in the run's process", "auto", 0),
            ("python-calamine + reader process", "auto", 1),
        ):
            settings.SYNC_INGEST_XLSX_READER, settings.SYNC_INGEST_READER_PROCESS_ROWS = (
                xlsx_reader,
                least,
            )
            _reset()
            reader.last_stats = None
            with processes.measure(f"XLSX new rows, {label}") as usage:
                seconds, run = _ingest(xlsx_path, batch)
            rates[label] = n / seconds
            notes = usage.describe()
            if reader.last_stats is not None:
                notes += f"; the reader process {reader.last_stats.cpu_seconds:.2f} s CPU"
            table.notes.append(notes)
            phases = ", ".join(f"{k} {v / 1000:.2f}s" for k, v in run.phase_ms.items())
            table.notes.append(f"XLSX, {label}: {seconds:.2f}s ({phases}); {run.status}")
            spent[label] = f"{seconds:.2f}s ({phases}); CPU " + ", ".join(
                f"{name} {sec:.2f}s" for name, sec in usage.cpu.items()
            )
    finally:
        settings.SYNC_INGEST_XLSX_READER, settings.SYNC_INGEST_READER_PROCESS_ROWS = saved
    openpyxl = "openpyxl, in the run's process (before)"
    before = rates[openpyxl]
    table.add(Row(f"{n:,}-row XLSX, new rows, openpyxl (before)", f"{before:,.0f} rows/s"))
    for label in ("python-calamine, in the run's process", "python-calamine + reader process"):
        after = rates[label]
        table.add(
            Row(
                f"{n:,}-row XLSX, new rows, {label}",
                f"{after:,.0f} rows/s",
                f"before {before:,.0f} rows/s",
                f"{shown_ratio(after / before, 3)}x before",
                "≥ 3x before",
                "met" if after >= 3 * before else "MISSED",
                why=f"this run {spent[label]} | before {spent[openpyxl]}",
            )
        )
    read = {}
    for name in ("openpyxl", "auto"):
        start = time.perf_counter()
        count = sum(1 for _row in XlsxSource(str(xlsx_path), reader=name).rows())
        read[name] = count / (time.perf_counter() - start)
    table.add(
        Row(
            f"{n:,}-row XLSX, reading only, python-calamine",
            f"{read['auto']:,.0f} rows/s",
            f"openpyxl {read['openpyxl']:,.0f} rows/s",
            f"{read['auto'] / read['openpyxl']:.1f}x openpyxl",
        )
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--skip-1m", action="store_true", help="leave out the 1M-row RSS run")
    args = parser.parse_args(argv)
    env = setup_django()
    from django.core.management import call_command

    from bench.ingest_floor import Floor
    from bench.processes import Processes

    call_command("migrate", verbosity=0)
    processes = Processes.discover()
    scale = 10 if args.quick else 1
    n = 100_000 // scale
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    table = Table(
        "syncops ingestion benchmark (bench/ingest.py; ./dev bench ingest)\n"
        f"load avg at the start {load}; {cpu_line()}",
        # Ratios first: what a reader wants is "0.42x floor, MISSED".
        columns=("measurement", "ratio", "goal", "verdict", "value", "baseline"),
        header=_row("measurement", "ratio", "goal", "", "figure", "compared with"),
    )
    usages: list[str] = []

    cpu: dict[str, str] = {}

    def measured(label: str, operation):
        """``operation()``, its CPU per process group noted; answers (wall seconds, result)."""
        with processes.measure(label) as usage:
            result = operation()
        usages.append(usage.describe())
        cpu[label] = ", ".join(f"{name} {sec:.2f}s" for name, sec in usage.cpu.items())
        return usage.wall, result

    def explain(row: Row, label: str, run, floor_label: str, floor_phases: str) -> None:
        """Where a missed goal's time went: the run's phases and CPU, the floor's."""
        if row.verdict == "MISSED":
            # printed under the row, here and in ./dev bench all's summary
            row.why = (
                f"run phases {_phases(run)}; CPU {cpu[label]} | "
                f"floor phases {floor_phases}; CPU {cpu[floor_label]}"
            )

    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            csv_path = write_csv(folder / "buyers.csv", BUYER_HEADERS, buyer_rows(n, 0))
            batch = args.batch_size
            floor = Floor()

            table.section(f"{n:,} new rows from a CSV, end to end, against the same-work floor")
            _reset()
            _wall, (seconds, run) = measured(
                f"new rows, pipeline, batch {batch or 'default'}", lambda: _ingest(csv_path, batch)
            )
            _reset()
            floor_seconds, written = measured(
                "new rows, same-work floor", lambda: floor.new(csv_path, 0)
            )
            new_floor = _floor_phases(floor)
            payloads = floor.check_payloads()
            row = floor_row(f"pipeline, batch {run.batch_size}", n, seconds, floor_seconds, 0.5)
            table.add(row)
            new_label = f"new rows, pipeline, batch {batch or 'default'}"
            explain(row, new_label, run, "new rows, same-work floor", new_floor)
            _reset()
            # The other batch size: 1,000 beside a default of another size, else the old 100.
            other = 1000 if run.batch_size != 1000 else 100
            _wall, (seconds_1k, run_1k) = measured(
                f"new rows, pipeline, batch {other}", lambda: _ingest(csv_path, other)
            )
            row = floor_row(f"pipeline, batch {other}", n, seconds_1k, floor_seconds, 0.5)
            table.add(row)
            explain(
                row,
                f"new rows, pipeline, batch {other}",
                run_1k,
                "new rows, same-work floor",
                new_floor,
            )
            table.add(
                _row(
                    "same-work floor (COPY, set-based SQL, one EVALSHA pipeline)",
                    "1.00x floor",
                    "",
                    "",
                    f"{n / floor_seconds:,.0f} rows/s",
                    f"{written:,} rows written ({new_floor})",
                )
            )
            _wall, copy_seconds = measured("plain COPY", lambda: _copy(csv_path))
            table.add(
                _row(
                    "reference: plain COPY into a staging table",
                    f"{floor_seconds / copy_seconds:.2f}x floor",
                    "",
                    "",
                    f"{n / copy_seconds:,.0f} rows/s",
                    f"pipeline at {copy_seconds / seconds:.3f}x COPY",
                )
            )
            _reset()
            ie_rows = 10_000 // scale
            _wall, ie_seconds = measured(
                f"django-import-export, {ie_rows:,} rows", lambda: _import_export(csv_path, ie_rows)
            )
            if ie_seconds is None:
                table.add(
                    _row(
                        "reference: django-import-export", "not installed (./dev bench installs it)"
                    )
                )
            else:
                table.add(
                    _row(
                        f"reference: django-import-export ({ie_rows:,} rows)",
                        f"{floor_seconds / n / (ie_seconds / ie_rows):.3f}x floor",
                        "",
                        "",
                        f"{ie_rows / ie_seconds:,.0f} rows/s",
                        f"pipeline {ie_seconds / ie_rows * n / seconds:.1f}x faster",
                    )
                )

            table.section(f"the same {n:,} rows again, unchanged, against the unchanged floor")
            _reset()
            _ingest(csv_path, batch)
            _wall, (seconds, run) = measured(
                f"re-ingest, pipeline, batch {batch or 'default'}", lambda: _ingest(csv_path, batch)
            )
            floor_seconds, changed = measured(
                "unchanged, same-work floor", lambda: floor.unchanged(csv_path, 0)
            )
            unchanged_floor = _floor_phases(floor)
            row = floor_row(
                f"re-ingest, batch {run.batch_size}, {run.unchanged:,} unchanged",
                n,
                seconds,
                floor_seconds,
                0.7,
            )
            table.add(row)
            unchanged_label = "unchanged, same-work floor"
            explain(
                row,
                f"re-ingest, pipeline, batch {batch or 'default'}",
                run,
                unchanged_label,
                unchanged_floor,
            )
            _wall, (seconds_1k, run_1k) = measured(
                f"re-ingest, pipeline, batch {other}", lambda: _ingest(csv_path, other)
            )
            row = floor_row(f"re-ingest, batch {other}", n, seconds_1k, floor_seconds, 0.7)
            table.add(row)
            explain(
                row, f"re-ingest, pipeline, batch {other}", run_1k, unchanged_label, unchanged_floor
            )
            table.add(
                _row(
                    "unchanged floor (COPY, one compare, record logs)",
                    "1.00x floor",
                    "",
                    "",
                    f"{n / floor_seconds:,.0f} rows/s",
                    f"{changed} rows found changed ({unchanged_floor})",
                )
            )

            table.section("the incident sheet and XLSX")
            _reset()
            incident = incident_buyers(folder / "incident.csv")
            _wall, (seconds, run) = measured("incident sheet", lambda: _ingest(incident, batch))
            row = _row(
                "4,140-row incident sheet, end to end",
                f"{seconds:.3f} s",
                "< 0.5 s",
                "met" if seconds < 0.5 else "MISSED",
                f"{run.created} created, {run.failed} failed",
            )
            row.why = f"run phases {_phases(run)}; CPU {cpu['incident sheet']}"
            table.add(row)
            _xlsx_rows(table, folder, n, batch)

            table.section(
                "peak RSS of one run (a process each; + its reader process, when it has one)"
            )
            sizes = [10_000 // scale, 100_000 // scale] + (
                [] if args.skip_1m else [1_000_000 // scale]
            )
            for size in sizes:
                path = write_csv(folder / f"rss{size}.csv", BUYER_HEADERS, buyer_rows(size, 0))
                # NOTE: the middle size also in the run's own process: the CSV pipeline with
                # and without its reader process, side by side.
                for least in (1, 0) if size == sizes[1] else (None,):
                    found = _rss(path, least)
                    _rss_row(table, size, found, least)
                path.unlink()
            _reset()
            table.notes.append(payloads)
    finally:
        table.notes.append(processes.names())
        table.notes.extend(usages)
        table.notes.extend(machine_lines())
        print(table.render())
        env.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

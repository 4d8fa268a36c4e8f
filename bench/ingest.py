"""Benchmark of spreadsheet ingestion: ``./dev bench ingest``.

Measured in one run, on the bench profile's embedded PostgreSQL and Redis (or DATABASE_URL /
REDIS_URL), against the goals, for the full pipeline (validate, compare, upsert, record logs,
write-through to Redis, verify):

* new rows from a 100k-row buyers CSV (goal ≥ 20k rows/s), beside PostgreSQL ``COPY`` of the
  same file into a staging table and django-import-export (the ``bench`` extra) on the same
  table and database (on 10k rows of the file: at its speed 100k would take minutes);
* re-ingesting the same unchanged 100k rows (goal ≥ 50k rows/s);
* the 4,140-row incident sheet end to end (goal < 0.5 s), and a 100k-row XLSX through
  today's path (openpyxl, in the run's process) and the new one (python-calamine, the reader
  process) in the same run (goal ≥ 3x), with the CPU of every process, and reading alone;
* peak RSS of a run on 10k, 100k and 1M-row CSVs, each in a process of its own, and of its
  reader process (goal: flat, < 150 MB at 1M); the 100k file also without the reader process.

Options: ``--quick`` (a tenth of the sizes), ``--batch-size N`` (default: the source's, 100;
the table also shows 1,000). Buyers are deleted before each measurement; nothing asserts.
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

from bench.harness import ROOT, Row, Table, machine_lines, setup_django, throughput_row
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
    rates = {}
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
    finally:
        settings.SYNC_INGEST_XLSX_READER, settings.SYNC_INGEST_READER_PROCESS_ROWS = saved
    before = rates["openpyxl, in the run's process (before)"]
    table.add(Row(f"{n:,}-row XLSX, new rows, openpyxl (before)", f"{before:,.0f} rows/s"))
    for label in ("python-calamine, in the run's process", "python-calamine + reader process"):
        after = rates[label]
        table.add(
            Row(
                f"{n:,}-row XLSX, new rows, {label}",
                f"{after:,.0f} rows/s",
                f"before {before:,.0f} rows/s",
                f"{after / before:.2f}x before",
                "≥ 3x before",
                "met" if after >= 3 * before else "MISSED",
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

    call_command("migrate", verbosity=0)
    scale = 10 if args.quick else 1
    n = 100_000 // scale
    table = Table("syncops ingestion benchmark (bench/ingest.py; ./dev bench ingest)")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            csv_path = write_csv(folder / "buyers.csv", BUYER_HEADERS, buyer_rows(n, 0))
            batch = args.batch_size

            table.section(f"{n:,} new rows from a CSV, end to end")
            _reset()
            seconds, run = _ingest(csv_path, batch)
            table.add(
                throughput_row(f"pipeline, batch {run.batch_size}", n / seconds, "rows", 20_000)
            )
            phases = ", ".join(f"{k} {v / 1000:.2f}s" for k, v in run.phase_ms.items())
            table.notes.append(f"new rows, batch {run.batch_size}: {seconds:.2f}s ({phases})")
            _reset()
            seconds_1k, run_1k = _ingest(csv_path, 1000)
            table.add(throughput_row("pipeline, batch 1000", n / seconds_1k, "rows", 20_000))
            phases = ", ".join(f"{k} {v / 1000:.2f}s" for k, v in run_1k.phase_ms.items())
            table.notes.append(f"new rows, batch 1000: {seconds_1k:.2f}s ({phases})")
            copy_seconds = _copy(csv_path)
            table.add(
                Row(
                    "PostgreSQL COPY into a staging table",
                    f"{n / copy_seconds:,.0f} rows/s",
                    f"pipeline {n / seconds:,.0f} rows/s",
                    f"pipeline at {copy_seconds / seconds:.2f}x COPY",
                )
            )
            _reset()
            ie_rows = 10_000 // scale
            ie_seconds = _import_export(csv_path, ie_rows)
            if ie_seconds is None:
                table.add(Row("django-import-export", "not installed (./dev bench installs it)"))
            else:
                table.add(
                    Row(
                        f"django-import-export ({ie_rows:,} rows)",
                        f"{ie_rows / ie_seconds:,.0f} rows/s",
                        f"pipeline {n / seconds:,.0f} rows/s",
                        f"pipeline {ie_seconds / ie_rows * n / seconds:.1f}x faster",
                    )
                )

            table.section(f"the same {n:,} rows again, unchanged")
            _reset()
            _ingest(csv_path, batch)
            seconds, run = _ingest(csv_path, batch)
            table.add(
                throughput_row(
                    f"re-ingest, batch {run.batch_size}, {run.unchanged:,} unchanged",
                    n / seconds,
                    "rows",
                    50_000,
                )
            )
            seconds, run = _ingest(csv_path, 1000)
            table.add(throughput_row("re-ingest, batch 1000", n / seconds, "rows", 50_000))

            table.section("the incident sheet and XLSX")
            _reset()
            incident = incident_buyers(folder / "incident.csv")
            seconds, run = _ingest(incident, batch)
            table.add(
                Row(
                    "4,140-row incident sheet, end to end",
                    f"{seconds:.3f} s",
                    f"{run.created} created, {run.failed} failed",
                    "",
                    "< 0.5 s",
                    "met" if seconds < 0.5 else "MISSED",
                )
            )
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
    finally:
        table.notes.extend(machine_lines())
        print(table.render())
        env.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

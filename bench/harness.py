"""What the benchmarks share: their own servers, interleaved timing, medians and the table.

A benchmark runs against the embedded servers of the ``bench`` profile (``.run/bench``), apart
from the demo's and the tests' servers, unless ``DATABASE_URL`` / ``REDIS_URL`` point elsewhere.
Servers it started are stopped at the end; servers that were already running are left running.
"""

from __future__ import annotations

import json
import math
import os
import platform
import signal
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROFILE = "bench"
# bench/all.py sets these for each bench it runs: where Table.render() appends the rows that
# have a goal (JSON lines), and the bench's name in them (default: the script's name).
SUMMARY_JSON_ENV = "BENCH_SUMMARY_JSON"
SUMMARY_NAME_ENV = "BENCH_NAME"


@dataclass
class Environment:
    """Which servers this process uses, and which of them it must stop at the end."""

    embedded: list[str] = field(default_factory=list)  # "database", "cache"
    started: list[str] = field(default_factory=list)

    def stop(self) -> list[str]:
        if not self.started:
            return []
        from devtools.devservices import Services

        services = Services(PROFILE)
        servers = {"database": services.postgres, "cache": services.cache}
        return [name for name in self.started if servers[name].stop()]


def exit_on_sigterm() -> None:
    """Turn SIGTERM (``timeout``, ``bench/all.py`` stopping a bench) into ``SystemExit``, so
    that the bench's ``finally`` blocks run: its rows removed, its child servers and the
    servers it started stopped. Python's default would end the process on the spot."""

    def stop(signum: int, _frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one clean-up, not a second one inside
        print(f"[bench] {signal.Signals(signum).name}: cleaning up", file=sys.stderr, flush=True)
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)


def die_with_parent() -> None:
    """``preexec_fn`` of a child that must not outlive this process (Linux): SIGTERM to it
    when this process dies, however it dies (a SIGKILL too). A child in a session of its own
    (a uvicorn server, a bench run by ``bench/all.py``) gets no signal of its parent's group
    otherwise. Elsewhere a no-op. One prctl: safe between fork and exec."""
    if sys.platform != "linux":
        return
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def setup_django(settings_module: str = "config.settings") -> Environment:
    """Point the process at the bench servers (started on demand) and set Django up."""
    exit_on_sigterm()
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    os.environ["SYNCOPS_SERVICES_PROFILE"] = PROFILE
    os.environ["DJANGO_SETTINGS_MODULE"] = settings_module  # a child must not inherit ours
    # NOTE: DEBUG wraps every cursor in CursorDebugWrapper (SQL formatting, a log call per
    # query): it would tax the paths with more queries, which is what the ratios compare.
    os.environ.setdefault("DEBUG", "false")
    # The benchmarks never send a task: no broker server is started for them.
    os.environ.setdefault("CELERY_BROKER_URL", "memory://")
    env = Environment(
        embedded=[
            name
            for name, variable in (("database", "DATABASE_URL"), ("cache", "REDIS_URL"))
            if not os.environ.get(variable)
        ]
    )
    if env.embedded:
        from devtools.devservices import Services, export_service_urls

        services = Services(PROFILE)
        running = {"database": services.postgres.is_running(), "cache": services.cache.is_running()}
        env.started = [name for name in env.embedded if not running[name]]
        # Started (or reused) here, before the settings, which start nothing themselves.
        export_service_urls(PROFILE, broker=False)

    import django

    django.setup()
    return env


# --------------------------------------------------------------------------- timing


@dataclass
class Samples:
    """Nanoseconds per call: wall clock, and CPU time of this process (its client side)."""

    wall: list[int] = field(default_factory=list)
    cpu: list[int] = field(default_factory=list)

    @property
    def wall_us(self) -> float:
        return statistics.median(self.wall) / 1000

    @property
    def cpu_us(self) -> float:
        return statistics.median(self.cpu) / 1000


def interleaved(
    ops: dict[str, Callable[[int], object]], *, n: int, warmup: int
) -> dict[str, Samples]:
    """Run the operations in rotation, ``n`` times each, after ``warmup`` rounds.

    Interleaving makes the compared operations share every drift of the machine (another
    process, a checkpoint, the CPU clock) instead of one block getting a quiet minute. The CPU
    time of this process is taken as well: unlike the wall clock it hardly moves when other
    processes compete for the cores, so it shows what the client side costs by itself.
    """
    names = list(ops)
    for i in range(warmup):
        for name in names:
            ops[name](i)
    samples = {name: Samples() for name in names}
    wall, cpu = time.perf_counter_ns, time.process_time_ns
    for i in range(n):
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            op = ops[name]
            cpu_start = cpu()
            start = wall()
            op(i)
            end = wall()
            samples[name].cpu.append(cpu() - cpu_start)
            samples[name].wall.append(end - start)
    return samples


def timed(operation: Callable[[], object]) -> tuple[float, float, object]:
    """Wall-clock seconds of one call, CPU seconds of this process during it, its result."""
    cpu_start, start = time.process_time(), time.perf_counter()
    result = operation()
    return time.perf_counter() - start, time.process_time() - cpu_start, result


# --------------------------------------------------------------------------- the table


@dataclass
class Row:
    measurement: str
    value: str
    baseline: str = ""
    ratio: str = ""
    goal: str = ""
    verdict: str = ""
    cpu: str = ""
    # Where a missed goal's time goes (not a column): the summary of ``./dev bench all``
    # prints it under the row, and a table under its heading's rows.
    why: str = ""


@dataclass
class Table:
    title: str
    rows: list[Row | str] = field(default_factory=list)  # a str is a section heading
    notes: list[str] = field(default_factory=list)
    # The columns' order and headings (Row's field names); the default: figure first.
    columns: tuple[str, ...] = (
        "measurement",
        "value",
        "baseline",
        "ratio",
        "goal",
        "verdict",
        "cpu",
    )
    header: Row = field(
        default_factory=lambda: Row(
            "measurement", "median", "compared with", "ratio", "goal", "", "CPU of this process"
        )
    )
    _emitted: set[tuple[str, ...]] = field(default_factory=set, repr=False, compare=False)

    def section(self, heading: str) -> None:
        self.rows.append(heading)

    def add(self, row: Row) -> None:
        self.rows.append(row)

    def render(self) -> str:
        """The table as text; with ``BENCH_SUMMARY_JSON`` set, also appends its goal rows there
        (``emit``), so ``bench/all.py`` can gather every goal without parsing the tables."""
        self.emit()
        header = self.header
        body = [row for row in self.rows if isinstance(row, Row)]
        columns = self.columns
        widths = {c: max(len(getattr(r, c)) for r in [header, *body]) for c in columns}

        def line(row: Row) -> str:
            return "  ".join(getattr(row, c).ljust(widths[c]) for c in columns).rstrip()

        rule = "-" * len(line(header))
        out = [self.title, rule, line(header), rule]
        for row in self.rows:
            if isinstance(row, str):
                out.append(f"[{row}]")
                continue
            out.append(line(row))
            if row.why and row.verdict == "MISSED":
                out.append(f"    why: {row.why}")
        out.append(rule)
        out.extend(self.notes)
        return "\n".join(out)

    def goal_rows(self) -> list[dict[str, str]]:
        """Every row with a goal, as a dict: its section heading, the bench and the table."""
        bench = os.environ.get(SUMMARY_NAME_ENV) or Path(sys.argv[0]).stem or "bench"
        found, section = [], ""
        for row in self.rows:
            if isinstance(row, str):
                section = row
            elif row.goal:
                found.append(
                    {
                        "bench": bench,
                        "table": self.title.splitlines()[0] if self.title else "",
                        "section": section,
                        **asdict(row),
                    }
                )
        return found

    def emit(self) -> None:
        """Append the goal rows not emitted yet as JSON lines to ``$BENCH_SUMMARY_JSON`` (a
        no-op when it is unset). Idempotent: rendering a table twice adds no duplicate."""
        path = os.environ.get(SUMMARY_JSON_ENV)
        if not path:
            return
        rows = [r for r in self.goal_rows() if _row_key(r) not in self._emitted]
        if not rows:
            return
        with Path(path).open("a", encoding="utf-8") as out:
            for row in rows:
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
                self._emitted.add(_row_key(row))


def _row_key(row: dict[str, str]) -> tuple[str, ...]:
    return (row["section"], row["measurement"], row["value"], row["goal"])


def shown_ratio(ratio: float, goal: float | None, *, below: bool = False) -> str:
    """A ratio with two decimals, cut toward the side of a miss when it has a goal: 0.4996
    rounded to "0.50" beside "≥ 0.5x  MISSED" would read as a wrong verdict, so it is "0.49"
    (and 1.1504 against "≤ 1.15x" is "1.16")."""
    if goal is None:
        return f"{ratio:.2f}"
    scaled = round(ratio * 100, 6)  # 0.29 * 100 is 28.999999999999996
    cut = math.ceil(scaled) if below else math.floor(scaled)
    return f"{cut / 100:.2f}"


def ratio_row(
    measurement: str,
    value: float,
    baseline_name: str,
    baseline: float,
    *,
    goal: float | None = None,
    unit: str = "µs",
    cpu: float | None = None,
    baseline_cpu: float | None = None,
) -> Row:
    """A latency row: ``value / baseline`` against a ≤ goal (lower is better)."""
    ratio = value / baseline
    verdict = "" if goal is None else ("met" if ratio <= goal else "MISSED")
    row = Row(
        measurement,
        f"{value:,.1f} {unit}",
        f"{baseline_name} {baseline:,.1f} {unit}",
        f"{shown_ratio(ratio, goal, below=True)}x",
        f"≤ {goal:g}x" if goal is not None else "",
        verdict,
    )
    if cpu is not None:
        row.cpu = f"{cpu:,.1f} {unit}" + (f" ({cpu / baseline_cpu:.2f}x)" if baseline_cpu else "")
    return row


def floor_row(
    measurement: str,
    per_second: float,
    floor_name: str,
    floor_per_second: float,
    goal_ratio: float | None = None,
    unit: str = "rows",
    *,
    cpu_share: float | None = None,
) -> Row:
    """A throughput row against its floor measured in the same run: ``value / floor`` against
    a ≥ goal ratio (higher is better; the floor is the same work by the minimum path, so the
    ratio moves far less with the machine's load than the rate itself). ``goal_ratio=None``
    prints the ratio without a goal (a reference)."""
    ratio = per_second / floor_per_second
    row = Row(
        measurement,
        f"{per_second:,.0f} {unit}/s",
        f"{floor_name} {floor_per_second:,.0f} {unit}/s",
        f"{shown_ratio(ratio, goal_ratio)}x floor",
        "" if goal_ratio is None else f"≥ {goal_ratio:g}x",
        "" if goal_ratio is None else ("met" if ratio >= goal_ratio else "MISSED"),
    )
    if cpu_share is not None:
        row.cpu = (
            f"{1e6 / per_second * cpu_share:,.1f} µs/{unit.rstrip('s')} ({cpu_share:.0%} of wall)"
        )
    return row


def machine_lines() -> list[str]:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return [
        (
            f"python {platform.python_version()} ({platform.python_implementation()}), "
            f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, load avg {load}"
        ),
    ]


def cpu_line() -> str:
    """The CPU model and the share of the CPUs busy right now (half a second's sample)."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import psutil

        busy = f", {psutil.cpu_percent(interval=0.5):.0f}% busy over 0.5 s"
    except ImportError:
        busy = ""
    return f"CPU: {model}{busy}"

"""Every benchmark in one run, then one table of every goal: ``./dev bench all [--quick]``.

Each bench runs in a process of its own (``bench/<name>.py``, one after another, never two at
once: they would share the two cores), its output shown as it comes, its table when it ends.
Then one summary: every row of every table that has a goal (gathered through
``BENCH_SUMMARY_JSON``, which ``bench.harness.Table.render`` appends to), with today's figure,
its floor or baseline, the ratio, the goal and met/MISSED, and a line per bench that failed
(its exit status and its last lines). The other benches still run after one fails.

``--quick`` is the before/after check (under 3 minutes on two cores): ``cache --quick``,
``ingest --quick --skip-1m``, ``api --quick --only in-process --only http --only browser
--browser-updates 30``. The full run is every bench's default: api with its 1,000 SSE clients,
ingest with its 1M-row RSS run, and a shortened chaos run (``--chaos-seconds``; ``--no-chaos``
leaves it out).

The bench profile's servers are started once here and reused by every bench (a bench stops
only the servers it started itself), then stopped at the end, also when this process is
interrupted or terminated (``timeout``): the running bench gets SIGTERM first (it cleans up
its rows and its own child servers), SIGKILL after ``GRACE`` seconds.

Exit status 0 whatever the figures, unless ``--strict``: then 1 when a bench failed or a goal
was missed. 143 / 130 when terminated / interrupted.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import (
    PROFILE,
    ROOT,
    SUMMARY_JSON_ENV,
    SUMMARY_NAME_ENV,
    die_with_parent,
    machine_lines,
)

GRACE = 20.0  # seconds a terminated bench has to clean up before SIGKILL
TAIL = 12  # lines of a failed bench's output shown in the summary


@dataclass(frozen=True)
class Bench:
    name: str
    quick: list[str] | None  # its options in --quick mode (None: not run)
    full: list[str] | None  # its options in the full run (None: not run)
    script: Path | None = None  # default: bench/<name>.py

    @property
    def path(self) -> Path:
        return self.script or ROOT / "bench" / f"{self.name}.py"


def benches(args: argparse.Namespace) -> list[Bench]:
    chaos = [
        "--duration",
        f"{args.chaos_seconds:g}",
        "--min-writes",
        "0",
        "--worker-dead",
        f"{min(30.0, args.chaos_seconds / 4):g}",
    ]
    return [
        Bench("cache", ["--quick"], []),
        Bench("ingest", ["--quick", "--skip-1m"], []),
        # The 1,000 SSE clients (10 s) are left out of the quick check, and the browser row
        # takes 30 updates instead of 100 (its time is mostly Chromium's start).
        Bench(
            "api",
            [
                "--quick",
                *("--only", "in-process", "--only", "http", "--only", "browser"),
                *("--browser-updates", "30"),
            ],
            [],
        ),
        Bench("chaos", None, None if args.no_chaos else chaos),
    ]


def log(message: str) -> None:
    print(f"[bench all] {message}", file=sys.stderr, flush=True)


class Terminated(Exception):  # noqa: N818 - a signal, not an error
    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def _raise_terminated(signum: int, _frame: object) -> None:
    # NOTE: once only. timeout(1) sends its signal to this process and then to its process
    # group, this process again: a second Terminated would cut the clean-up below short.
    for other in SIGNALS:
        signal.signal(other, signal.SIG_IGN)
    raise Terminated(signum)


@dataclass
class Outcome:
    name: str
    command: list[str]
    returncode: int | None = None
    seconds: float = 0.0
    tail: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=TAIL))

    @property
    def failed(self) -> bool:
        return self.returncode != 0


def _pump(stream, out, tail: collections.deque[str]) -> None:
    for line in iter(stream.readline, ""):
        out.write(line)
        out.flush()
        tail.append(line.rstrip("\n"))
    stream.close()


def run_bench(bench: Bench, options: list[str], summary: Path, outcomes: list[Outcome]) -> None:
    """Run one bench to its end (appended to ``outcomes`` first: an interrupted one is
    reported too); on ``Terminated`` the bench is stopped, then the exception goes on."""
    command = [sys.executable, str(bench.path), *options]
    outcome = Outcome(bench.name, command)
    outcomes.append(outcome)
    env = dict(
        os.environ,
        PYTHONUNBUFFERED="1",
        **{SUMMARY_JSON_ENV: str(summary), SUMMARY_NAME_ENV: bench.name},
    )
    log(f"{bench.name}: {' '.join([bench.path.name, *options])}")
    started = time.perf_counter()
    # A session of its own: a signal meant for this runner (Ctrl-C, timeout's process group)
    # reaches the bench only as the SIGTERM sent below, after which it cleans up.
    proc = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        start_new_session=True,
        preexec_fn=die_with_parent,  # this runner SIGKILLed (timeout -k): the bench cleans up
    )
    pumps = [
        threading.Thread(target=_pump, args=(proc.stdout, sys.stdout, outcome.tail), daemon=True),
        threading.Thread(target=_pump, args=(proc.stderr, sys.stderr, outcome.tail), daemon=True),
    ]
    for pump in pumps:
        pump.start()
    try:
        outcome.returncode = proc.wait()
    except BaseException:
        _terminate(proc, bench.name)
        outcome.returncode = proc.returncode
        raise
    finally:
        outcome.seconds = time.perf_counter() - started
        for pump in pumps:
            pump.join(timeout=5)
        log(f"{bench.name}: exit {outcome.returncode} after {_duration(outcome.seconds)}")


def _terminate(proc: subprocess.Popen, name: str) -> None:
    if proc.poll() is not None:
        return
    log(f"{name}: sending SIGTERM (it removes its rows and stops its servers) …")
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=GRACE)
    except subprocess.TimeoutExpired:
        log(f"{name}: still running after {GRACE:g} s: SIGKILL")
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        proc.wait()


def _duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s" if minutes else f"{seconds:.1f} s"


# --------------------------------------------------------------------------- servers


class BenchServers:
    """The bench profile's PostgreSQL and cache Redis, started once for every bench (unless
    ``DATABASE_URL`` / ``REDIS_URL`` point elsewhere); ``stop`` stops those started here."""

    def __init__(self) -> None:
        self.started: list = []

    def start(self) -> None:
        from devtools.devservices import Services

        services = Services(PROFILE)
        wanted = (("DATABASE_URL", services.postgres), ("REDIS_URL", services.cache))
        for variable, server in wanted:
            if os.environ.get(variable):
                continue
            if server.start():
                self.started.append(server)

    def stop(self) -> None:
        for server in reversed(self.started):
            try:
                server.stop()
            except Exception as e:  # noqa: BLE001 - report, and stop the others all the same
                log(f"could not stop a bench server: {e}")
        if self.started:
            log(f"stopped the {PROFILE} profile's servers started for this run")
        self.started = []


# --------------------------------------------------------------------------- summary


def read_goals(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    goals = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            goals.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a bench killed while writing: its last line may be cut
    return goals


def summary(
    goals: list[dict[str, str]], outcomes: list[Outcome], *, title: str, skipped: list[str]
) -> str:
    columns = ["measurement", "value", "baseline", "ratio", "goal", "verdict"]
    header = dict(
        zip(
            columns,
            ["measurement", "today", "floor / baseline", "ratio", "goal", "met?"],
            strict=True,
        )
    )
    widths = {c: max(len(str(r.get(c, ""))) for r in [header, *goals]) for c in columns}

    def line(row: dict[str, str]) -> str:
        return "  ".join(str(row.get(c, "")).ljust(widths[c]) for c in columns).rstrip()

    rule = "-" * max(len(line(header)), 60)
    out = [title, rule, line(header), rule]
    group = None
    for row in goals:
        key = (row.get("bench", ""), row.get("section", ""))
        if key != group:
            group = key
            out.append(f"[{key[0]}" + (f": {key[1]}]" if key[1] else "]"))
        out.append(line(row))
        if row.get("why") and row.get("verdict") == "MISSED":
            out.append(f"    why: {row['why']}")
    if not goals:
        out.append("(no goal row was printed)")
    out.append(rule)
    met = sum(1 for r in goals if r.get("verdict") == "met")
    missed = sum(1 for r in goals if r.get("verdict") == "MISSED")
    out.append(f"goals: {met} met, {missed} MISSED, {len(goals) - met - missed} without a verdict")
    for outcome in outcomes:
        state = (
            "ok"
            if not outcome.failed
            else "did not finish"
            if outcome.returncode is None
            else f"stopped (exit {outcome.returncode})"
            if outcome.returncode in (-signal.SIGKILL, 128 + signal.SIGTERM)
            else f"FAILED (exit {outcome.returncode})"
        )
        out.append(f"{outcome.name}: {state} in {_duration(outcome.seconds)}")
    out.extend(f"{name}: not run" for name in skipped)
    for outcome in outcomes:
        if outcome.failed:
            out.append(f"--- last lines of {outcome.name} ({' '.join(outcome.command[1:])}):")
            out.extend(f"    {text}" for text in outcome.tail)
    return "\n".join(out)


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the quick check (< 3 minutes)")
    parser.add_argument(
        "--strict", action="store_true", help="exit 1 when a bench failed or a goal was missed"
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=["cache", "ingest", "api", "chaos"],
        help="run only this bench (repeatable)",
    )
    parser.add_argument("--no-chaos", action="store_true", help="leave chaos out of a full run")
    parser.add_argument(
        "--chaos-seconds",
        type=float,
        default=120.0,
        help="seconds of faults of the full run's chaos run (default 120)",
    )
    args = parser.parse_args(argv)
    if args.chaos_seconds <= 0:
        parser.error("--chaos-seconds must be positive")
    mode = "quick" if args.quick else "full"
    plan, skipped = [], []
    for bench in benches(args):
        options = bench.quick if args.quick else bench.full
        if args.only and bench.name not in args.only:
            continue
        if options is None:
            skipped.append(f"{bench.name} ({'full run only' if args.quick else '--no-chaos'})")
        else:
            plan.append((bench, options))

    for signum in SIGNALS:
        signal.signal(signum, _raise_terminated)
    started = time.perf_counter()
    outcomes: list[Outcome] = []
    servers = BenchServers()
    interrupted: Terminated | None = None
    print("\n".join([f"./dev bench all{' --quick' if args.quick else ''}", *machine_lines()]))
    with tempfile.TemporaryDirectory(prefix="bench-all-") as directory:
        goals_path = Path(directory) / "goals.jsonl"
        try:
            servers.start()
            for bench, options in plan:
                run_bench(bench, options, goals_path, outcomes)
                print(flush=True)
        except Terminated as e:
            interrupted = e
            log(f"{e}: stopping")
        finally:
            # NOTE: no signal may cut the servers' stop short; timeout's SIGKILL (-k) is the
            # last resort, and CI stops the bench profile after it all the same.
            for signum in SIGNALS:
                signal.signal(signum, signal.SIG_IGN)
            servers.stop()
        goals = read_goals(goals_path)
    total = time.perf_counter() - started
    title = f"summary of ./dev bench all ({mode}): every goal, {_duration(total)} in all"
    if interrupted is not None:
        title += f", INTERRUPTED ({interrupted})"
    print(summary(goals, outcomes, title=title, skipped=skipped))
    print(f"load avg at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"total time: {_duration(total)}", flush=True)
    if interrupted is not None:
        return 128 + interrupted.signum
    if args.strict and (
        any(o.failed for o in outcomes) or any(g.get("verdict") == "MISSED" for g in goals)
    ):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``./dev bench all``'s summary: every row with a goal of every bench's table reaches it (by
``BENCH_SUMMARY_JSON``, with no change in the bench scripts), once each, and a bench that fails
is reported with its exit status and its last lines while the others still count. No figure
is checked: the benches here are stand-ins that print fixed rows and start no server."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from bench import all as bench_all
from bench.harness import ROOT, SUMMARY_JSON_ENV, Row, Table, floor_row, ratio_row


def test_render_appends_each_goal_row_once(tmp_path: Path, monkeypatch) -> None:
    summary = tmp_path / "goals.jsonl"
    monkeypatch.setenv(SUMMARY_JSON_ENV, str(summary))
    monkeypatch.setenv("BENCH_NAME", "ingest")
    table = Table("ingestion\nmachine line")
    table.section("10,000 new rows")
    table.add(floor_row("pipeline", 4_200, "same-work floor", 10_000, 0.5))
    table.add(Row("PostgreSQL COPY", "1,000,000 rows/s"))  # a reference: no goal
    table.add(floor_row("re-ingest", 8_000, "same-work floor", 10_000, 0.7))
    table.render()
    table.render()  # a table printed twice adds nothing

    rows = [json.loads(line) for line in summary.read_text().splitlines()]
    assert [(r["measurement"], r["ratio"], r["goal"], r["verdict"]) for r in rows] == [
        ("pipeline", "0.42x floor", "≥ 0.5x", "MISSED"),
        ("re-ingest", "0.80x floor", "≥ 0.7x", "met"),
    ]
    assert {(r["bench"], r["table"], r["section"]) for r in rows} == {
        ("ingest", "ingestion", "10,000 new rows")
    }
    assert rows[0]["baseline"] == "same-work floor 10,000 rows/s"


def test_without_the_variable_nothing_is_written(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(SUMMARY_JSON_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    table = Table("t")
    table.add(ratio_row("hit", 13.0, "HGETALL", 10.0, goal=1.3))
    assert "1.30x" in table.render()
    assert list(tmp_path.iterdir()) == []


def _stand_in(path: Path, body: str) -> Path:
    path.write_text(
        f"import sys\nsys.path.insert(0, {str(ROOT)!r})\n" + textwrap.dedent(body),
        encoding="utf-8",
    )
    return path


def test_a_failed_bench_is_reported_and_the_others_still_count(tmp_path: Path) -> None:
    good = _stand_in(
        tmp_path / "good.py",
        """
        from bench.harness import Table, ratio_row
        table = Table("good bench")
        table.section("reads")
        hit = ratio_row("cache hit", 14.0, "HGETALL", 10.0, goal=1.3)
        hit.why = "decoding 3 µs of 4"
        table.add(hit)
        met = ratio_row("cache miss", 10.0, "SELECT", 10.0, goal=1.3)
        met.why = "not printed: the goal is met"
        table.add(met)
        print(table.render())
        """,
    )
    bad = _stand_in(
        tmp_path / "bad.py",
        """
        print("half a table")
        raise SystemExit("the bench server did not start")
        """,
    )
    goals_path = tmp_path / "goals.jsonl"
    outcomes: list[bench_all.Outcome] = []
    bench_all.run_bench(bench_all.Bench("bad", [], [], bad), [], goals_path, outcomes)
    bench_all.run_bench(bench_all.Bench("good", [], [], good), [], goals_path, outcomes)
    goals = bench_all.read_goals(goals_path)
    text = bench_all.summary(goals, outcomes, title="summary", skipped=["chaos (full run only)"])

    assert [o.returncode for o in outcomes] == [1, 0]
    assert "[good: reads]" in text
    assert "cache hit" in text and "≤ 1.3x" in text and "MISSED" in text
    assert "goals: 1 met, 1 MISSED" in text
    # A missed goal says why under its row; a met one does not.
    lines = text.splitlines()
    assert lines[lines.index(next(x for x in lines if x.startswith("cache hit"))) + 1] == (
        "    why: decoding 3 µs of 4"
    )
    assert "not printed" not in text
    assert "bad: FAILED (exit 1)" in text
    assert "good: ok" in text
    assert "chaos (full run only): not run" in text
    tail = text.split("--- last lines of bad", 1)[1]
    assert "the bench server did not start" in tail and "half a table" in tail


@pytest.mark.parametrize(
    ("quick", "expected"),
    [
        (True, ["cache", "ingest", "api"]),
        (False, ["cache", "ingest", "api", "chaos"]),
    ],
)
def test_the_quick_check_runs_every_bench_but_chaos(quick: bool, expected: list[str]) -> None:
    args = bench_all.argparse.Namespace(chaos_seconds=120.0, no_chaos=False)
    chosen = [b.name for b in bench_all.benches(args) if (b.quick if quick else b.full) is not None]
    assert chosen == expected

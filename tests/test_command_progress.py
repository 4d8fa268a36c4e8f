"""The sync commands' progress bar: drawn in place on one line, and ended with a newline
before anything else is printed — a log record (stderr, the same terminal) or the command's
summary — so no line starts glued to the end of the bar."""

from __future__ import annotations

import io
import logging
import re
import subprocess
import sys

import pytest

from config.env import ROOT
from sync.management.commands._progress import ProgressLine, bar
from tests.console.sources import buyers_sheet, sources_file
from tests.subprocesses import child_env

BAR = re.compile(r"(?:\w+\s+)?\[[#.]{30}\] [\d,]+/[\d,]+\s+[\d.]+%")


def terminal_lines(output: str) -> list[str]:
    """What a terminal shows: each line as its last carriage-return segment left it."""
    return [line.rsplit("\r", 1)[-1] for line in output.split("\n")]


def test_a_log_record_while_the_bar_is_drawn_starts_on_its_own_line() -> None:
    screen = io.StringIO()  # stdout and stderr on one terminal
    handler = logging.StreamHandler(screen)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger("tests.progress")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        with ProgressLine(screen) as line:
            line.show(bar(2000, 4140))
            logger.info("batch 20 written")
            line.show(bar(4140, 4140))
            logger.warning("run 5 finished")
        screen.write("run 5 buyers: succeeded\n")
    finally:
        logger.removeHandler(handler)
    lines = terminal_lines(screen.getvalue())
    assert lines == [
        "[##############................] 2,000/4,140  48.3%",
        "INFO batch 20 written",
        "[##############################] 4,140/4,140 100.0%",
        "WARNING run 5 finished",
        "run 5 buyers: succeeded",
        "",
    ]


def test_the_bar_ends_its_line_once_and_only_when_drawn() -> None:
    screen = io.StringIO()
    with ProgressLine(screen, enabled=False) as line:
        line.show(bar(1, 2))
    assert screen.getvalue() == ""
    with ProgressLine(screen) as line:
        line.show(bar(1, 2))
        line.end()
    assert screen.getvalue().endswith("50.0%\n")  # one newline, not two


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_sync_ingest_prints_its_summary_and_logs_below_the_bar(tmp_path) -> None:
    """The real command in a terminal-like pipe (stdout and stderr together, INFO logs)."""
    buyers_sheet(tmp_path, 600, bad=2)
    env = {
        **child_env(),
        "SYNC_INGEST_SOURCES_FILE": str(sources_file(tmp_path)),
        "LOG_LEVEL": "INFO",
        "LOG_FORMAT": "plain",
        "PYTHONUNBUFFERED": "1",
    }
    done = subprocess.run(
        [sys.executable, "manage.py", "sync_ingest", "buyers", "--batch-size", "100"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=120,
        check=False,
    )
    output = done.stdout.decode()  # NOTE: not text=True, which turns each \r into \n
    lines = terminal_lines(output)
    assert done.returncode == 0, output
    bars = [line for line in lines if "[#" in line or "[." in line]
    assert len(bars) == 1, output  # redrawn in place: one line on the screen
    for line in bars:  # a bar line holds the bar and nothing else
        assert BAR.fullmatch(line.strip()), line
    assert "600/600 100.0%" in bars[-1]
    # The run's log records (an alert for its two bad rows, its result) and the summary each
    # start on a line of their own below the bar.
    after = lines[lines.index(bars[-1]) + 1 :]
    assert any("ALERT gaps [buyers]" in line for line in after), output
    assert any(line.startswith("run ") and " buyers: partial" in line for line in after)

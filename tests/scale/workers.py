"""Celery workers as real processes on the real broker, each on a queue of its own (so a task
sent to a queue runs on that worker), reporting every task's result to a file.

Used by tests/scale/test_replay_workers.py.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

from config.env import ROOT
from tests.subprocesses import child_env, worker_answers
from tests.waiting import wait_until

# The worker's code: the task's own return value (the replay's summary) goes to a file, one
# JSON line per task, written by the worker process itself (task_success runs in it).
WORKER = """
import json, sys
import django
django.setup()
from celery.signals import task_success
from config.celery import app

queue, report = sys.argv[1], sys.argv[2]

@task_success.connect
def _report(sender=None, result=None, **_):
    with open(report, "a") as handle:
        handle.write(json.dumps({"task": sender.name, "result": result}) + "\\n")

app.worker_main(["worker", "--pool", "solo", "--queues", queue, "--hostname",
                 f"{queue}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat",
                 "--loglevel", "WARNING"])
"""
SUMMARY = re.compile(r"claimed (\d+), written (\d+), failed (\d+) in (\d+) batch")


@dataclass
class Replayed:
    claimed: int
    written: int
    failed: int
    batches: int


class WorkerProcess:
    def __init__(self, name: str, folder: Path, env: dict[str, str]) -> None:
        self.queue = f"{name}-{os.getpid()}"
        self.report = folder / f"{self.queue}.jsonl"
        self.log = (folder / f"{self.queue}.log").open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(WORKER), self.queue, str(self.report)],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    @property
    def hostname(self) -> str:
        return f"{self.queue}@{os.uname().nodename}"

    def results(self) -> list[Replayed]:
        if not self.report.exists():
            return []
        lines = [json.loads(line) for line in self.report.read_text().splitlines() if line]
        return [
            Replayed(*map(int, SUMMARY.match(line["result"]).groups()))
            for line in lines
            if line["task"] == "sync.tasks.replay"
        ]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:  # pragma: no cover - a hung worker
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def start_workers(app, count: int, folder: Path, **env: str) -> list[WorkerProcess]:
    """``count`` worker processes, answering a ping before this returns. ``env``: settings
    for the workers (e.g. ``SYNC_REPLAY_BATCH``). The caller stops them (``stop``)."""
    environment = {**child_env(), **env}
    workers = [WorkerProcess(f"replay{n}", folder, environment) for n in range(count)]
    try:
        for worker in workers:
            wait_until(
                lambda w=worker: w.proc.poll() is not None or worker_answers(app, w.hostname),
                timeout=60,
            )
            assert worker.proc.poll() is None, (worker.log.name, "worker exited at start")
    except BaseException:
        for worker in workers:
            worker.stop()
        raise
    return workers

"""CPU time of every process a measurement involves, servers included (psutil).

A throughput on two shared cores says little by itself: the same pipeline gave 11.4k rows/s on
a quiet machine and 8.8k at load 2.5. So each benchmark prints, beside its figures, the load
average and the CPU seconds every process spent during each measurement: this process, its
child processes (a reader process, a uvicorn server), PostgreSQL (the postmaster and every
backend and helper process, reaped ones included) and Redis. A reader can then tell a slow
machine (high load, little CPU of ours) from a slow pipeline (our CPU near the wall time).

Servers are found through their own connections: PostgreSQL's ``pg_backend_pid()``'s parent is
the postmaster; Redis says its ``process_id``. A server on another host has no local process:
its row says so (Redis's own ``used_cpu_*`` figures are used instead when it answers).

    processes = Processes.discover()
    with processes.measure("new rows, CSV") as usage:
        run()
    table.notes.append(usage.describe())
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import psutil


def _own_and_reaped(process: psutil.Process) -> float:
    """CPU seconds of a process, its threads, and its children it has already waited for."""
    times = process.cpu_times()
    return times.user + times.system + times.children_user + times.children_system


def _tree(process: psutil.Process) -> float:
    """CPU seconds of a process tree: the root (with its reaped children) and every living
    descendant. A descendant alive at the start and reaped by the end moves from the second
    term to the first, so a difference of two samples still counts it once."""
    total = 0.0
    try:
        total += _own_and_reaped(process)
        for child in process.children(recursive=True):
            try:
                times = child.cpu_times()
                total += times.user + times.system
            except (psutil.NoSuchProcess, psutil.ZombieProcess):
                continue
    except psutil.NoSuchProcess:
        pass
    return total


def _own(process: psutil.Process) -> float:
    """CPU seconds of the process itself (all its threads), without any child."""
    times = process.cpu_times()
    return times.user + times.system


def _count(process: psutil.Process) -> int:
    try:
        return 1 + len(process.children(recursive=True))
    except psutil.NoSuchProcess:
        return 0


@dataclass
class Usage:
    """What one measurement cost: wall seconds, CPU seconds per process group, the load."""

    label: str
    wall: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)
    load: tuple[float, float, float] = (0.0, 0.0, 0.0)
    ended: list[str] = field(default_factory=list)  # servers gone by the end: no figure

    @property
    def total_cpu(self) -> float:
        return sum(self.cpu.values())

    def describe(self) -> str:
        parts = ", ".join(
            f"{name} {seconds:.2f} s ({seconds / self.wall:.0%})" if self.wall else name
            for name, seconds in self.cpu.items()
            if name != "child processes" or seconds >= 0.005  # none started: no figure
        )
        return (
            f"CPU of {self.label}: wall {self.wall:.2f} s; {parts}; "
            f"together {self.total_cpu / self.wall:.2f} of {os.cpu_count()} cores; "
            f"load avg {self.load[0]:.2f}"
            + "".join(f"; {name} ended during it: no figure" for name in self.ended)
            if self.wall
            else f"CPU of {self.label}: not measured"
        )


@dataclass
class Processes:
    """The process groups to account: this process, its children, the servers."""

    this: psutil.Process
    postgres: psutil.Process | None
    redis: psutil.Process | None
    redis_client: object | None = None  # for INFO cpu when the server is not local

    @classmethod
    def discover(cls, *, database: str = "default") -> Processes:
        from django.db import connections

        postgres = redis = None
        client = None
        try:
            with connections[database].cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                backend = psutil.Process(cursor.fetchone()[0])
            postgres = backend.parent()
        except (psutil.Error, Exception):  # noqa: BLE001 - a remote server: no local process
            postgres = None
        try:
            from sync.cache.connection import client as engine_client

            client = engine_client()
            redis = psutil.Process(int(client.info("server")["process_id"]))
        except (psutil.Error, Exception):  # noqa: BLE001 - a remote server: no local process
            redis = None
        return cls(psutil.Process(os.getpid()), postgres, redis, client)

    def sample(self) -> dict[str, float]:
        # Split: a uvicorn server, a reader process or Chromium (children) apart from the
        # benchmark's own client side.
        this = _own(self.this)
        out = {"this process": this, "child processes": _tree(self.this) - this}
        if self.postgres is not None and self.postgres.is_running():
            out["PostgreSQL"] = _tree(self.postgres)
        if self.redis is not None:
            if self.redis.is_running():  # same pid and start time: not a restarted server
                out["Redis"] = _tree(self.redis)
        elif self.redis_client is not None:
            try:
                info = self.redis_client.info("cpu")  # type: ignore[attr-defined]
                out["Redis"] = float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
            except Exception:  # noqa: BLE001, S110 - a Redis that does not answer: no figure
                pass
        return out

    def names(self) -> str:
        """One line naming the processes accounted, for the table's notes."""
        parts = [f"this process (pid {self.this.pid}), its child processes apart"]
        if self.postgres is not None:
            count = _count(self.postgres)
            parts.append(f"PostgreSQL (postmaster pid {self.postgres.pid}, {count} processes)")
        else:
            parts.append("PostgreSQL not on this machine (no CPU figure)")
        if self.redis is not None:
            parts.append(f"Redis (pid {self.redis.pid})")
        else:
            parts.append("Redis from its INFO cpu (not a local process)")
        return "CPU accounted: " + ", ".join(parts)

    @contextmanager
    def measure(self, label: str) -> Iterator[Usage]:
        usage = Usage(label)
        before = self.sample()
        start = time.perf_counter()
        try:
            yield usage
        finally:
            usage.wall = time.perf_counter() - start
            after = self.sample()
            # A server that ended (or was restarted: a new pid) during the measurement has
            # no difference to show; it is named instead of counted as a negative figure.
            usage.cpu = {name: after[name] - before[name] for name in after if name in before}
            usage.ended = [name for name in before if name not in after]
            usage.load = os.getloadavg()

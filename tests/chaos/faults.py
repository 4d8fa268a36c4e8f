"""The chaos run's processes and faults (``driver.py``).

``Fleet`` starts and stops the writer and reader processes and one Celery worker (solo pool,
a queue of the run's own) with the test's or the bench's database, cache and broker;
``Injector`` makes each fault for real and says whether it demonstrably happened.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FAULTS = ("redis_pause", "redis_restart", "flushall", "worker_kill", "writer_kill", "pg_terminate")


@dataclass
class ChaosConfig:
    duration: float = 300.0
    writers: int = 3
    readers: int = 2
    seed: int = field(default_factory=lambda: random.SystemRandom().randrange(1_000_000))
    min_writes: int = 0
    fault_gap: float = 5.0  # mean seconds between two faults
    replay_interval: float = 1.0  # how often a replay task is sent (beat's job)
    converge_timeout: float = 240.0
    rows: int = 300  # rows seeded per model
    bulk_rows: int = 40  # rows per bulk update
    child_env: dict[str, str] = field(default_factory=dict)  # extra settings for the children
    # Seconds the worker stays dead once, a third into the run (0: never): nothing replays,
    # so the staleness bound and the fence alone keep reads fresh.
    worker_dead: float = 0.0
    sampler_interval: float = 0.0  # how often the consistency sampler ticks (0: never)


@dataclass
class Targets:
    """Where the run happens: the children's environment and the cache Redis to fault."""

    env: dict[str, str]
    cache: object  # devtools.devservices.RedisServer: the application's cache, ours to fault
    workdir: Path


# --------------------------------------------------------------------------- the processes


def child_env() -> dict[str, str]:
    """The environment that points a child process at this process's database and Redis."""
    from urllib.parse import quote

    from django.conf import settings
    from django.db import connection

    conf = connection.settings_dict
    user = quote(conf["USER"] or "postgres")
    password = f":{quote(conf['PASSWORD'])}" if conf["PASSWORD"] else ""
    socket_dir = conf.get("OPTIONS", {}).get("host")
    if socket_dir:
        database = f"postgres://{user}{password}@/{conf['NAME']}?host={socket_dir}"
    else:
        port = f":{conf['PORT']}" if conf["PORT"] else ""
        database = f"postgres://{user}{password}@{conf['HOST']}{port}/{conf['NAME']}"
    return {
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": database,
        "REDIS_URL": settings.SYNC_REDIS_URL,
        "SYNC_REDIS_URL": settings.SYNC_REDIS_URL,
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
    }


class Fleet:
    """The run's child processes: writers, readers and one Celery worker (solo pool)."""

    def __init__(self, config: ChaosConfig, targets: Targets, run: str) -> None:
        self.config, self.targets, self.run = config, targets, run
        self.queue = f"chaos-{run}"
        self.procs: dict[str, subprocess.Popen] = {}
        self.starts: Counter[str] = Counter()
        self.crashes: list[str] = []

    def _spawn(self, name: str, argv: list[str]) -> None:
        env = dict(os.environ)
        env.update(self.targets.env)
        env.update(self.config.child_env)
        env.update(
            {
                "PGAPPNAME": f"chaos-{self.run}-{name}",
                "PYTHONUNBUFFERED": "1",
                "COVERAGE_PROCESS_START": "",
            }
        )
        with (self.targets.workdir / f"{name}.log").open("ab") as out:
            self.procs[name] = subprocess.Popen(
                argv,
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.starts[name] += 1

    def start_child(self, role: str, index: int) -> None:
        name = f"{role}{index}"
        seed = self.config.seed * 1000 + index * 50 + self.starts[name]
        self._spawn(
            name,
            [
                sys.executable,
                "-m",
                "tests.chaos.load",
                role,
                str(index),
                str(seed),
                self.run,
                str(self.targets.workdir),
                str(self.config.bulk_rows),
            ],
        )

    def start_worker(self) -> None:
        self._spawn(
            "worker",
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "--pool",
                "solo",
                "-Q",
                self.queue,
                "-n",
                f"{self.queue}@%h",
                "-l",
                "info",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ],
        )

    def send_replay(self) -> None:
        from sync.tasks import replay

        # Beat's job, more often. NOTE: no ``expires``: with acks_late and a prefetch of one,
        # the solo worker stopped taking tasks after discarding expired ones.
        replay.apply_async(queue=self.queue)

    def worker_ready(self, timeout: float = 60.0) -> bool:
        """Wait until the worker started last logs that it is ready (it boots in seconds)."""
        path = self.targets.workdir / "worker.log"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if path.read_text(errors="replace").count(" ready.") >= self.starts["worker"]:
                return True
            if self.procs["worker"].poll() is not None:
                break
            time.sleep(0.05)
        return False

    def revive(self) -> None:
        """Restart a writer or reader that exited without being told to: a crash (reported)."""
        for name, proc in list(self.procs.items()):
            if name != "worker" and proc.poll() is not None:
                tail = (self.targets.workdir / f"{name}.log").read_text(errors="replace")[-2000:]
                self.crashes.append(f"{name} exited with {proc.returncode}: {tail}")
                role = name.rstrip("0123456789")
                self.start_child(role, int(name[len(role) :]))

    def wait_exit(self, name: str, timeout: float) -> int | None:
        try:
            return self.procs[name].wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, names: list[str], timeout: float = 30.0) -> None:
        for name in names:
            with contextlib.suppress(ProcessLookupError):
                self.procs[name].send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for name in names:
            if self.wait_exit(name, max(0.1, deadline - time.monotonic())) is None:
                self.procs[name].kill()
                self.procs[name].wait(10)
            if self.procs[name].returncode not in (0, -signal.SIGTERM):
                self.crashes.append(f"{name} ended with {self.procs[name].returncode}")
            del self.procs[name]

    def kill_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        self.procs.clear()


# --------------------------------------------------------------------------- faults


@dataclass
class Window:
    kind: str
    start: float
    end: float
    proven: bool  # the fault demonstrably did what it says (see Injector)


class Injector:
    def __init__(self, rng: random.Random, fleet: Fleet, cache) -> None:
        self.rng, self.fleet, self.cache = rng, fleet, cache

    def inject(self, kind: str) -> Window:
        start = time.monotonic()
        proven = getattr(self, kind)()
        return Window(kind, start, time.monotonic(), proven)

    def redis_pause(self) -> bool:
        self.cache.pause()
        try:
            time.sleep(self.rng.uniform(0.3, 2.0))
            return not self.cache.ping(timeout=0.05)
        finally:
            self.cache.resume()

    def redis_restart(self) -> bool:
        self.cache.kill()
        try:
            time.sleep(self.rng.uniform(0.1, 1.0))
            return not self.cache.ping(timeout=0.05)
        finally:
            self.cache.start()

    def flushall(self) -> bool:
        import redis

        client = redis.Redis.from_url(self.cache.url, socket_timeout=5)
        try:
            return bool(client.flushall())
        finally:
            client.close()

    def worker_dead(self) -> bool:
        """SIGKILL the worker and leave it dead for ``worker_dead`` seconds, then start it."""
        worker = self.fleet.procs["worker"]
        worker.kill()
        self.fleet.wait_exit("worker", 10)
        time.sleep(self.fleet.config.worker_dead)
        dead_throughout = worker.poll() is not None
        self.fleet.start_worker()
        return self.fleet.worker_ready() and dead_throughout

    def worker_kill(self) -> bool:
        """SIGKILL the worker while its replay task runs: a lock on the queue table holds the
        task inside its claim statement until the worker is dead; the claim then commits for
        nobody, and its intents wait for the claim's lease (the "replayer dies" case)."""
        from django.db import connections

        conn = connections.create_connection("default")
        mid_replay = False
        try:
            with conn.cursor() as cursor:
                cursor.execute("SET lock_timeout = '5s'")
                cursor.execute("BEGIN")
                cursor.execute("LOCK TABLE sync_retry_queue IN SHARE MODE")
                self.fleet.send_replay()
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline and not mid_replay:
                    # NOTE: a transaction sees one snapshot of pg_stat_activity: clear it.
                    cursor.execute("SELECT pg_stat_clear_snapshot()")
                    cursor.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE"
                        " application_name = %s AND wait_event_type = 'Lock'",
                        [f"chaos-{self.fleet.run}-worker"],
                    )
                    mid_replay = cursor.fetchone()[0] > 0
                    time.sleep(0.005)
                self.fleet.procs["worker"].kill()
                self.fleet.wait_exit("worker", 10)
                cursor.execute("ROLLBACK")
        finally:
            conn.close()
        self.fleet.start_worker()
        return self.fleet.worker_ready() and mid_replay

    def writer_kill(self) -> bool:
        name = f"writer{self.rng.randrange(self.fleet.config.writers)}"
        self.fleet.procs[name].send_signal(signal.SIGUSR1)
        code = self.fleet.wait_exit(name, 15)
        if code is None:  # pragma: no cover - a writer that never commits again
            self.fleet.procs[name].kill()
            self.fleet.wait_exit(name, 10)
        self.fleet.start_child("writer", int(name.removeprefix("writer")))
        return code == -signal.SIGKILL

    def pg_terminate(self) -> bool:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))"
                " FROM pg_stat_activity WHERE application_name LIKE %s",
                [f"chaos-{self.fleet.run}-%"],
            )
            return cursor.fetchone()[0] > 0

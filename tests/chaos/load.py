"""The chaos run's workload (``driver.py``): writer and reader processes.

Writers make random single-row saves, creates, hard and soft deletes and bulk updates (the
engine's ``update_synced``) on the synced models in transactions; each committed transaction
also inserts its row count into the ``chaos_ledger`` table, in the same transaction, so the
count of committed writes comes from PostgreSQL even for a writer killed right after COMMIT.
Customers and buyers carry PII canaries (a token unique to the run) in every PII field.

Readers read random keys through ``sync.cache.repository`` and judge each read against the
row's newest committed version, fetched from PostgreSQL before the read starts.
"""

from __future__ import annotations

import array
import json
import os
import random
import signal
import sys
import time
from pathlib import Path

LABELS = (
    "catalog.part",
    "catalog.stocklevel",
    "customers.customer",
    "customers.order",
    "buyers.buyer",
)
LEDGER = "chaos_ledger"


# --------------------------------------------------------------------------- the writers


def canary(run: str, n: int) -> dict[str, str]:
    token = f"cnry{run}x{n}"
    return {
        "name": f"Ada {token}",
        "email": f"{token}@example.com",
        "phone": f"+1 (555) {run_digits(run)}-{n:04d}",
        "street": f"{n} {token} Street",
        "city": f"{token}ville",
    }


def run_digits(run: str) -> str:
    return f"{int(run, 16) % 1000:03d}"


class Writer:
    WEIGHTS = {
        "part_update": 14,
        "part_toggle": 4,
        "part_create": 3,
        "part_bulk": 8,
        "stock_update": 10,
        "stock_bulk": 6,
        "customer_create": 5,
        "customer_update": 7,
        "customer_delete": 2,
        "order_create": 6,
        "order_update": 8,
        "order_delete": 2,
        "buyer_create": 4,
        "buyer_update": 6,
        "buyer_delete": 2,
        "buyer_bulk": 5,
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

            self.pools = {
                m.__name__: list(m._base_manager.values_list("pk", flat=True))
                for m in (Part, StockLevel, Customer, Order, Buyer)
            }
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
                            cursor.execute(
                                f"INSERT INTO {LEDGER} (writer, op, rows, killed)"  # noqa: S608
                                " VALUES (%s, %s, %s, %s)",
                                [self.index, op, rows, kill],
                            )
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
        part = m["Part"].objects.create(sku=f"chaos:P{number}", name="new part", price=1)
        m["StockLevel"].objects.create(part=part, quantity=10)
        return 2

    def part_bulk(self) -> int:
        from sync.cache.bulk import update_synced

        model = self._models()["Part"]
        pks = self.rng.sample(self._pool(model), min(self.bulk_rows, len(self._pool(model))))
        return update_synced(
            model._base_manager.filter(pk__in=pks), price=self.rng.randrange(1, 100_000) / 100
        )

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
        self._models()["Customer"].objects.create(
            customer_number=f"chaos:C{number}", country="DE", **canary(self.run, n)
        )
        return 1

    def customer_update(self) -> int:
        customer = self._pick(self._models()["Customer"])
        customer.status = self.rng.choice(["active", "suspended"])
        for name, value in canary(self.run, self.n).items():
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
        customer = (
            m["Customer"]
            ._base_manager.filter(pk__in=self.rng.sample(self._pool(m["Customer"]), 3))
            .first()
        )
        if customer is None:
            return 0
        m["Order"].objects.create(
            order_number=f"chaos:O{number}",
            customer=customer,
            items=[{"sku": "x", "qty": 1}],
            total=n % 1000,
            shipping_address=f"{n} cnry{self.run}x{n} Road",
            placed_at=timezone.now(),
        )
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
        pii = canary(self.run, n)
        now = timezone.now()
        self._models()["Buyer"].objects.create(
            buyer_number=f"chaos:B{number}",
            name=pii["name"],
            email=pii["email"],
            phone=pii["phone"],
            address=pii["street"],
            notes=pii["city"],
            status="active",
            budget=n % 900_000,
            created_at=now,
            synced_at=now,
            db_updated_at=now,
        )
        return 1

    def buyer_update(self) -> int:
        from django.utils import timezone

        buyer = self._pick(self._models()["Buyer"])
        buyer.budget = self.rng.randrange(1, 900_000)
        buyer.notes = canary(self.run, self.n)["city"]
        buyer.db_updated_at = timezone.now()
        buyer.save()
        return 1

    def buyer_delete(self) -> int:
        return self._pick(self._models()["Buyer"]).delete()[0]

    def buyer_bulk(self) -> int:
        from sync.cache.bulk import update_synced

        model = self._models()["Buyer"]
        pks = self.rng.sample(self._pool(model), min(self.bulk_rows, len(self._pool(model))))
        return update_synced(
            model._base_manager.filter(pk__in=pks),
            status=self.rng.choice(["active", "paused", "closed"]),
        )

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
        # (start, seconds the returned value was out of date or None, model) of stale reads
        self.stale_reads: list[tuple[float, float | None, str]] = []
        self.errors = 0

    def _state(self, model, pk) -> tuple[bool, int, int] | None:
        """(live, version, updated_at_ns) of the row in PostgreSQL, None when it is gone."""
        from django.db import connection

        meta = model._meta
        deleted = "deleted_at IS NOT NULL" if meta.label_lower == "catalog.part" else "false"
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT {deleted}, version, updated_at_ns FROM {meta.db_table}"  # noqa: S608
                f" WHERE {meta.pk.column} = %s",
                [pk],
            )
            row = cursor.fetchone()
        return None if row is None else (not row[0], row[1], row[2])

    def read_once(self) -> None:
        from django.db import DatabaseError, connection

        from sync.cache import repository

        try:
            if time.monotonic() - self.loaded_at > 2:
                from django.db.models import Max, Min

                self.ranges = {
                    m: tuple(m._base_manager.aggregate(lo=Min("pk"), hi=Max("pk")).values())
                    for m in self.models
                }
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
        if stale:
            self.stale_reads.append((started, age, model._meta.label_lower))

    def loop(self) -> None:
        while not self.stopping:
            self.read_once()
        path = self.workdir / f"reader{self.index}"
        with path.with_suffix(".times").open("wb") as out:
            self.times.tofile(out)
        path.with_suffix(".stale").write_bytes(bytes(self.stale))
        path.with_suffix(".json").write_text(
            json.dumps({"errors": self.errors, "stale": self.stale_reads})
        )


def child_main(role: str, index: int, seed: int, run: str, workdir: Path, bulk_rows: int) -> int:
    import django

    django.setup()
    worker = (
        Writer(index, seed, run, bulk_rows) if role == "writer" else Reader(index, seed, workdir)
    )

    def stop(_signum, _frame) -> None:
        worker.stopping = True

    def kill_after_commit(_signum, _frame) -> None:
        worker.kill_after_commit = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGUSR1, kill_after_commit)
    worker.loop()
    return 0


if __name__ == "__main__":
    # A child of the run (faults.py, Fleet.start_child): role, index, seed, run, workdir, rows
    # per bulk update.
    role, index, seed, run, workdir, bulk_rows = sys.argv[1:]
    sys.exit(child_main(role, int(index), int(seed), run, Path(workdir), int(bulk_rows)))

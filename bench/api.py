"""Benchmark of the catalog API: ``./dev bench api``.

In one run, on the bench profile's embedded PostgreSQL and Redis (or DATABASE_URL / REDIS_URL):

* ``GET /api/parts/{id}`` (public detail, cache hit) requests/s against the same view reading
  PostgreSQL only (``CATALOG_CACHE_READS=false``: one joined query), each served by one uvicorn
  worker on loopback, loaded by ``wrk`` when it is installed (``apt-get install wrk``), else by a
  small asyncio loader in this process. Rounds alternate between the two servers so that both
  share the machine's drift; the median round is reported.
* ``GET /api/events``: how many idle SSE clients one uvicorn process holds (and its memory per
  client), and the fan-out latency from "a staff stock update starts" to "every client has the
  event", p50 and p99 over all (event, client) pairs.

Bounded: a fixed number of rounds of a few seconds, loopback only. It creates and removes its
own parts (SKUs ``bench-api:…``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import ROOT, Row, Table, interleaved, machine_lines, ratio_row, setup_django

PREFIX = "bench-api:"


def log(message: str) -> None:
    print(f"[bench api] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- servers


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _database_url() -> str:
    from django.db import connection

    conf = connection.settings_dict
    socket_dir = conf.get("OPTIONS", {}).get("host")
    user = conf["USER"] or "postgres"
    if socket_dir:
        return f"postgres://{user}@/{conf['NAME']}?host={socket_dir}"
    password = f":{conf['PASSWORD']}" if conf["PASSWORD"] else ""
    port = f":{conf['PORT']}" if conf["PORT"] else ""
    return f"postgres://{user}{password}@{conf['HOST']}{port}/{conf['NAME']}"


class Server:
    """One uvicorn worker serving config.asgi on a loopback port."""

    def __init__(self, *, cache_reads: bool) -> None:
        from django.conf import settings

        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = dict(
            os.environ,
            DATABASE_URL=_database_url(),
            REDIS_URL=settings.SYNC_REDIS_URL,
            SYNC_REDIS_URL=settings.SYNC_REDIS_URL,
            DEBUG="false",
            CATALOG_CACHE_READS="true" if cache_reads else "false",
            DB_CONN_MAX_AGE="600",
            # one client address sends it all: the per-IP limit would answer 429s
            API_RATELIMIT_ENABLED="false",
        )
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "config.asgi:application",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--no-access-log",
                "--log-level",
                "warning",
                "--timeout-graceful-shutdown",
                "1",
                "--backlog",
                "8192",
            ],
            cwd=ROOT,
            env=env,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                msg = f"uvicorn exited with {self.proc.returncode}"
                raise RuntimeError(msg)
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        msg = "uvicorn did not start listening"
        raise RuntimeError(msg)

    def rss_mb(self) -> float:
        import psutil

        return psutil.Process(self.proc.pid).memory_info().rss / 2**20

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


# --------------------------------------------------------------------------- data


def create_parts(count: int) -> list[int]:
    from django.db import transaction

    from catalog.models import Part, StockLevel
    from sync.cache.bulk import bulk_create_synced

    with transaction.atomic():
        parts = bulk_create_synced(
            Part,
            [
                Part(
                    sku=f"{PREFIX}{n:06d}",
                    name=f"Bench part {n}",
                    price=n % 500 + 1,
                    description="<p>Benchmark part.</p>",
                    specifications={"n": n},
                    images=[f"https://images.example.com/bench/{n}.jpg"],
                )
                for n in range(count)
            ],
        )
        bulk_create_synced(
            StockLevel, [StockLevel(part=p, quantity=100, reserved=1) for p in parts]
        )
    return [p.pk for p in parts]


def remove_parts() -> int:
    from django.db import transaction

    from catalog.models import Part

    with transaction.atomic():
        count, _ = Part.objects.filter(sku__startswith=PREFIX).delete()
    return count


# --------------------------------------------------------------------------- HTTP load


def wrk_round(
    base: str, paths: list[str], *, seconds: int, connections: int, directory: Path
) -> tuple[float, float, float]:
    """Requests/s, p50 and p99 latency in ms, from one wrk run."""
    script = directory / "paths.lua"
    script.write_text(
        "local paths = {" + ",".join(f'"{p}"' for p in paths) + "}\n"
        "math.randomseed(7)\n"
        "request = function() return wrk.format(nil, paths[math.random(#paths)]) end\n"
    )
    out = subprocess.run(
        [
            "wrk",
            "-t",
            "1",
            "-c",
            str(connections),
            "-d",
            f"{seconds}s",
            "--latency",
            "-s",
            str(script),
            base,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        msg = f"wrk saw errors:\n{out}"
        raise RuntimeError(msg)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))

    def percentile(name: str) -> float:
        value, unit = re.search(rf"\s{name}%\s+([\d.]+)(us|ms|s)", out).groups()
        return float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]

    return rps, percentile("50"), percentile("99")


def python_round(
    base: str, paths: list[str], *, seconds: int, connections: int, directory: Path
) -> tuple[float, float, float]:
    """The same with an asyncio loader (when wrk is not installed): it shares the CPUs with
    the server, so its absolute figures are lower than wrk's; the ratio is what counts."""
    import httpx

    async def run() -> tuple[float, float, float]:
        latencies: list[float] = []
        rng = random.Random(7)
        stop = time.perf_counter() + seconds
        limits = httpx.Limits(max_connections=connections)
        async with httpx.AsyncClient(base_url=base, limits=limits) as client:

            async def worker() -> None:
                while time.perf_counter() < stop:
                    start = time.perf_counter()
                    response = await client.get(rng.choice(paths))
                    response.raise_for_status()
                    latencies.append((time.perf_counter() - start) * 1000)

            await asyncio.gather(*(worker() for _ in range(connections)))
        cuts = statistics.quantiles(latencies, n=100)
        return len(latencies) / seconds, cuts[49], cuts[98]

    return asyncio.run(run())


def bench_http(table: Table, ids: list[int], args: argparse.Namespace) -> None:
    loader = wrk_round if shutil.which("wrk") and not args.python_loader else python_round
    name = "wrk" if loader is wrk_round else "asyncio loader"
    paths = [f"/api/parts/{pk}" for pk in ids]
    servers = {"cache": Server(cache_reads=True), "postgresql": Server(cache_reads=False)}
    results: dict[str, list[tuple[float, float, float]]] = {k: [] for k in servers}
    try:
        with tempfile.TemporaryDirectory() as directory:
            for server in servers.values():  # warm: connections, prepared paths, cache fills
                loader(
                    server.base,
                    paths,
                    seconds=1,
                    connections=args.connections,
                    directory=Path(directory),
                )
            for i in range(args.rounds):
                order = list(servers) if i % 2 == 0 else list(reversed(servers))
                for key in order:
                    log(f"round {i + 1}/{args.rounds}: {key}")
                    results[key].append(
                        loader(
                            servers[key].base,
                            paths,
                            seconds=args.seconds,
                            connections=args.connections,
                            directory=Path(directory),
                        )
                    )
    finally:
        for server in servers.values():
            server.stop()

    def median(key: str, index: int) -> float:
        return statistics.median(r[index] for r in results[key])

    cache_rps, db_rps = median("cache", 0), median("postgresql", 0)
    table.section(
        f"GET /api/parts/{{id}}: one uvicorn worker each, {name}, "
        f"{args.connections} connections, {args.rounds} x {args.seconds} s rounds "
        f"alternating, {len(ids):,} parts"
    )
    table.add(
        Row(
            "cache hit (repository.get x2)",
            f"{cache_rps:,.0f} req/s",
            f"PostgreSQL only {db_rps:,.0f} req/s",
            f"{cache_rps / db_rps:.2f}x",
        )
    )
    for index, label in ((1, "p50"), (2, "p99")):
        cache_ms, db_ms = median("cache", index), median("postgresql", index)
        table.add(
            Row(
                f"latency {label}, cache hit",
                f"{cache_ms:.2f} ms",
                f"PostgreSQL only {db_ms:.2f} ms",
                f"{cache_ms / db_ms:.2f}x",
            )
        )


def bench_in_process(table: Table, ids: list[int], args: argparse.Namespace) -> None:
    """The same view through Django's test client in this process: no server, no loader, no
    thread hand-offs; what the view itself costs each way (the servers add their own
    per-request overhead on top, the same for both)."""
    from django.conf import settings
    from django.test import Client

    client = Client()
    paths = [f"/api/parts/{pk}" for pk in ids]

    # NOTE: a plain attribute set, not override_settings: its setting_changed signal would
    # cost more CPU per request than the view itself.
    def cached(i: int) -> None:
        settings.CATALOG_CACHE_READS = True
        client.get(paths[i % len(paths)])

    def database(i: int) -> None:
        settings.CATALOG_CACHE_READS = False
        client.get(paths[i % len(paths)])

    found = interleaved({"cache": cached, "postgresql": database}, n=args.in_process, warmup=200)
    table.section(
        f"GET /api/parts/{{id}} in this process (Django test client), "
        f"{args.in_process:,} of each, interleaved"
    )
    table.add(
        ratio_row(
            "cache hit",
            found["cache"].wall_us,
            "PostgreSQL only",
            found["postgresql"].wall_us,
            cpu=found["cache"].cpu_us,
            baseline_cpu=found["postgresql"].cpu_us,
        )
    )
    settings.CATALOG_CACHE_READS = True
    table.add(
        Row(
            "= requests/s one thread",
            f"{1e6 / found['cache'].wall_us:,.0f} req/s",
            f"PostgreSQL only {1e6 / found['postgresql'].wall_us:,.0f} req/s",
            f"{found['postgresql'].wall_us / found['cache'].wall_us:.2f}x",
        )
    )


# --------------------------------------------------------------------------- SSE


async def _sse_client(
    port: int,
    part: int,
    ready: asyncio.Event,
    counter: list[int],
    arrivals: dict[int, list[float]],
    total: int,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"GET /api/events?part={part} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Accept: text/event-stream\r\n\r\n".encode()
    )
    await writer.drain()
    try:
        while line := await reader.readline():
            if line.startswith(b"retry:"):
                counter[0] += 1
                if counter[0] == total:
                    ready.set()
            elif line.startswith(b"data: "):
                quantity = int(re.search(rb'"quantity": (\d+)', line).group(1))
                arrivals.setdefault(quantity, []).append(time.perf_counter())
    finally:
        writer.close()


def bench_sse(table: Table, ids: list[int], args: argparse.Namespace) -> None:
    from catalog import services
    from catalog.models import StockLevel

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = args.sse_clients * 2 + 200
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(needed, hard), hard))
    clients = min(args.sse_clients, (min(needed, hard) - 200) // 2)
    part = ids[0]
    server = Server(cache_reads=True)
    try:
        idle_mb = server.rss_mb()

        async def run() -> tuple[float, float, dict[int, list[float]], dict[int, float]]:
            ready, counter, arrivals = asyncio.Event(), [0], {}
            started = time.perf_counter()
            tasks = [
                asyncio.create_task(
                    _sse_client(server.port, part, ready, counter, arrivals, clients)
                )
                for _ in range(clients)
            ]
            await asyncio.wait_for(ready.wait(), timeout=120)
            connect_s = time.perf_counter() - started
            held_mb = server.rss_mb()
            sent: dict[int, float] = {}
            for n in range(args.sse_events):
                stock = await asyncio.to_thread(StockLevel.objects.get, pk=part)
                quantity = 1_000 + n
                sent[quantity] = time.perf_counter()
                await asyncio.to_thread(
                    services.stock_update,
                    part_id=part,
                    expected_version=stock.version,
                    quantity=quantity,
                    reserved=0,
                )
                deadline = time.perf_counter() + 30
                while len(arrivals.get(quantity, ())) < clients and (
                    time.perf_counter() < deadline
                ):
                    await asyncio.sleep(0.005)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            return connect_s, held_mb, arrivals, sent

        connect_s, held_mb, arrivals, sent = asyncio.run(run())
    finally:
        server.stop()
    latencies = [(t - sent[q]) * 1000 for q, times in arrivals.items() if q in sent for t in times]
    delivered = len(latencies) / (clients * len(sent))
    cuts = statistics.quantiles(latencies, n=100)
    table.section(
        f"GET /api/events: one uvicorn process, {clients:,} idle clients, "
        f"{len(sent)} stock updates fanned out to all"
    )
    table.add(
        Row(
            "clients held",
            f"{clients:,}",
            f"connected in {connect_s:.1f} s",
            f"{delivered:.1%} delivered",
        )
    )
    table.add(
        Row(
            "server memory",
            f"{held_mb:,.0f} MB",
            f"idle {idle_mb:,.0f} MB",
            f"{(held_mb - idle_mb) * 1024 / clients:.1f} KB/client",
        )
    )
    table.add(Row("fan-out latency p50", f"{cuts[49]:.1f} ms", "update start -> client has it"))
    table.add(Row("fan-out latency p99", f"{cuts[98]:.1f} ms", "update start -> client has it"))


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", type=int, default=1_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument(
        "--in-process",
        type=int,
        default=3_000,
        help="requests of each kind through the test client",
    )
    parser.add_argument("--sse-clients", type=int, default=2_000)
    parser.add_argument("--sse-events", type=int, default=20)
    parser.add_argument(
        "--python-loader",
        action="store_true",
        help="use the asyncio loader even when wrk is installed",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="1 round of 2 s, 200 SSE clients, 5 events, 300 in-process",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.seconds, args.sse_clients, args.sse_events = 1, 2, 200, 5
        args.in_process = 300
    env = setup_django()
    try:
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        if leftover := remove_parts():
            log(f"removed {leftover:,} rows left by an earlier run")
        ids = create_parts(args.parts)
        table = Table(
            "syncops catalog API benchmark (bench/api.py; ./dev bench api)\n"
            + "\n".join(machine_lines())
        )
        try:
            bench_in_process(table, ids, args)
            bench_http(table, ids, args)
            bench_sse(table, ids, args)
        finally:
            load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
            table.notes.append(f"load average at the end: {load}")
            print(table.render())
        return 0
    finally:
        remove_parts()
        for name in env.stop():
            log(f"stopped the embedded {name} server of the bench profile")


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark of the catalog API and the storefront: ``./dev bench api``.

In one run, on the bench profile's embedded PostgreSQL and Redis (or DATABASE_URL / REDIS_URL):

* ``GET /api/parts/{id}`` (public detail, JSON) and ``GET /parts/{id}/`` (the storefront's
  product page, HTML) from a cache hit against the same views reading PostgreSQL only
  (``CATALOG_CACHE_READS=false``): first through Django's test client in this process, then
  requests/s and latency with each side served by one uvicorn worker on loopback, loaded by
  ``wrk`` when it is installed (``apt-get install wrk``), else by a small asyncio loader in
  this process. Rounds alternate between the two servers so that both share the machine's
  drift; the median round is reported.
* Commit to browser: headless Chromium (Debian's ``/usr/bin/chromium``, driven by Playwright as
  the browser tests do; skipped when it is missing) holds the product page open, live on
  ``/api/events``; each of 100 staff stock updates (``catalog.services.stock_update``) is
  timed from its COMMIT to the moment the page's DOM shows the new available stock, split
  into commit -> stream append -> SSE frame in the page -> DOM. Goal: p99 < 250 ms.
* ``GET /api/events``: 1,000 idle SSE clients on one uvicorn process, the server's memory per
  client (RSS before and after), and the fan-out latency from a stock update's COMMIT to
  "every client has the event", beside Centrifugo's published p99 (about 200 ms, at a far
  larger scale).

Bounded: a fixed number of rounds of a few seconds, loopback only. It creates and removes its
own parts (SKUs ``bench-api:…``). Nothing here asserts on a timing: it prints one table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import (
    ROOT,
    Row,
    Table,
    cpu_line,
    die_with_parent,
    interleaved,
    machine_lines,
    ratio_row,
    setup_django,
)
from bench.processes import Processes

PREFIX = "bench-api:"
LOG_DIR = ROOT / ".run" / "bench" / "api-logs"


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


def static_application():
    """``config.asgi`` with its static files served, whatever ``DEBUG`` says (``uvicorn
    --factory bench.api:static_application``): the storefront page's script must load in the
    browser run, whose server keeps ``DEBUG`` off like the others."""
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

    from config.asgi import application

    return ASGIStaticFilesHandler(application)


class Server:
    """One uvicorn worker serving config.asgi on a loopback port (started by the constructor;
    ``wait_listening`` before use, ``stop`` always).

    Its output goes to a log file (an access line per SSE client would bury the table); the
    file's last lines are shown when the server fails to start.
    """

    def __init__(self, *, cache_reads: bool, static: bool = False) -> None:
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
            # NOTE: 0, as in production: under ASGI Django runs each request's synchronous
            # code in a thread of its own, and a connection kept past the request is never
            # reused nor closed (3,200 requests left 112 open; PostgreSQL then refuses clients).
            DB_CONN_MAX_AGE="0",
            # one client address sends it all: the per-IP limit would answer 429s
            API_RATELIMIT_ENABLED="false",
        )
        app = (
            ["--factory", "bench.api:static_application"] if static else ["config.asgi:application"]
        )
        self.log_path = LOG_DIR / f"uvicorn-{self.port}.log"
        self.stopped = False
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log_file:
            # NOTE: the child inherits this process' open-files limit (raised by bench_sse).
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    *app,
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
                stdout=log_file,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent,  # it must not outlive the bench
            )

    def wait_listening(self) -> Server:
        """Wait until it accepts connections (servers started together start in parallel)."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                msg = f"uvicorn exited with {self.proc.returncode}:\n{self.log_tail()}"
                raise RuntimeError(msg)
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        msg = f"uvicorn did not start listening:\n{self.log_tail()}"
        raise RuntimeError(msg)

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def rss_mb(self) -> float:
        import psutil

        return psutil.Process(self.proc.pid).memory_info().rss / 2**20

    def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        if self.proc.poll() is not None:  # it died on its own: keep its log
            log(f"uvicorn on port {self.port} had exited ({self.proc.returncode}): {self.log_path}")
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.log_path.unlink(missing_ok=True)


class Servers:
    """The two HTTP servers (cache reads on, off), started together on first use and shared by
    the HTTP comparison and the browser run (one server start fewer). Both serve the static
    files (the product page's script) alike, so the comparison stays like for like."""

    def __init__(self) -> None:
        self._pair: dict[str, Server] = {}
        self._error: Exception | None = None

    def pair(self) -> dict[str, Server]:
        if self._error is not None:
            msg = f"the HTTP servers did not start: {self._error}"
            raise RuntimeError(msg)
        if not self._pair:
            try:
                self._pair["cache"] = Server(cache_reads=True, static=True)
                self._pair["postgresql"] = Server(cache_reads=False, static=True)
                for server in self._pair.values():
                    server.wait_listening()
            except Exception as e:
                self._error = e
                raise
        return self._pair

    def stop(self) -> None:
        for server in self._pair.values():
            server.stop()


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


def committed_stock_update(part_id: int, quantity: int, reserved: int = 0) -> float:
    """Set a part's stock through the product's write path (``catalog.services``, as the staff
    API does) and return ``time.time()`` right after its COMMIT: before the on-commit
    write-through (the cache write and the event's stream append) runs in this thread."""
    from django.db import connections

    from catalog import services
    from catalog.models import StockLevel

    conn = connections["default"]
    committed: list[float] = []
    original = conn.commit

    def commit() -> None:
        # NOTE: Django runs on_commit callbacks after commit() returns, in set_autocommit(True).
        original()
        committed.append(time.time())

    version = StockLevel.objects.values_list("version", flat=True).get(pk=part_id)
    conn.commit = commit
    try:
        services.stock_update(
            part_id=part_id, expected_version=version, quantity=quantity, reserved=reserved
        )
    finally:
        del conn.commit
    return committed[-1]


def percentiles(values: list[float]) -> tuple[float, float, float]:
    """p50, p99 and max (p99 by linear interpolation between the closest ranks)."""
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return cuts[49], cuts[98], max(values)


# --------------------------------------------------------------------------- HTTP load


def wrk_round(
    base: str, paths: list[str], *, seconds: float, connections: int, directory: Path
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
            f"{max(1, round(seconds))}s",  # whole seconds only
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
    base: str, paths: list[str], *, seconds: float, connections: int, directory: Path
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


@dataclass(frozen=True)
class Target:
    """A public GET compared cache hit vs PostgreSQL only."""

    heading: str
    path: str  # with {pk}
    cache_label: str

    def paths(self, ids: list[int]) -> list[str]:
        return [self.path.format(pk=pk) for pk in ids]


API = Target("GET /api/parts/{id}", "/api/parts/{pk}", "cache hit (repository.get x2)")
PAGE = Target("GET /parts/{id}/ (product page, HTML)", "/parts/{pk}/", "page from a cache hit")


def page_missing(get: Callable[[str], int], ids: list[int]) -> str | None:
    """Why the product page cannot be measured (``None`` when it answers 200)."""
    status = get(PAGE.path.format(pk=ids[0]))
    if status == 200:
        return None
    return f"{PAGE.path.format(pk=ids[0])} answered {status}: no storefront page"


def bench_http(table: Table, ids: list[int], args: argparse.Namespace) -> None:
    """Requests/s and latency of each target, served by two uvicorn workers (cache reads on,
    off), in alternating rounds; the median round is reported."""
    import httpx

    loader = wrk_round if shutil.which("wrk") and not args.python_loader else python_round
    name = "wrk" if loader is wrk_round else "asyncio loader"
    servers = args.servers.pair()
    missing = page_missing(
        lambda path: httpx.get(servers["cache"].base + path, timeout=30).status_code, ids
    )
    targets = [API] if missing else [API, PAGE]
    with tempfile.TemporaryDirectory() as directory:
        for target in targets:
            paths = target.paths(ids)
            results: dict[str, list[tuple[float, float, float]]] = {k: [] for k in servers}
            for server in servers.values():  # warm: connections, cache fills, templates
                loader(
                    server.base,
                    paths,
                    seconds=min(1.0, args.seconds),
                    connections=args.connections,
                    directory=Path(directory),
                )
            for i in range(args.rounds):
                order = list(servers) if i % 2 == 0 else list(reversed(servers))
                for key in order:
                    log(f"{target.heading}: round {i + 1}/{args.rounds}, {key}")
                    results[key].append(
                        loader(
                            servers[key].base,
                            paths,
                            seconds=args.seconds,
                            connections=args.connections,
                            directory=Path(directory),
                        )
                    )
            _http_rows(table, target, results, ids, args, name)
    if missing:
        table.section(f"{PAGE.heading}: one uvicorn worker each")
        table.add(Row(PAGE.cache_label, "not measured", missing))


def _http_rows(
    table: Table,
    target: Target,
    results: dict[str, list[tuple[float, float, float]]],
    ids: list[int],
    args: argparse.Namespace,
    loader_name: str,
) -> None:
    def median(key: str, index: int) -> float:
        return statistics.median(r[index] for r in results[key])

    cache_rps, db_rps = median("cache", 0), median("postgresql", 0)
    table.section(
        f"{target.heading}: one uvicorn worker each, {loader_name}, "
        f"{args.connections} connections, {args.rounds} x {args.seconds:g} s rounds "
        f"alternating, {len(ids):,} parts"
    )
    table.add(
        Row(
            target.cache_label,
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
    """The same views through Django's test client in this process: no server, no loader, no
    thread hand-offs; what each view itself costs each way (the servers add their own
    per-request overhead on top, the same for both). Every answer must be a 200: a 429 or a
    404 would be timed as if it were the page."""
    from django.conf import settings
    from django.test import Client

    client = Client()
    settings.CATALOG_CACHE_READS = True
    missing = page_missing(lambda path: client.get(path).status_code, ids)
    targets = [API] if missing else [API, PAGE]

    def op(target: Target, cache_reads: bool) -> Callable[[int], None]:
        paths = target.paths(ids)

        # NOTE: a plain attribute set, not override_settings: its setting_changed signal
        # would cost more CPU per request than the view itself.
        def run(i: int) -> None:
            settings.CATALOG_CACHE_READS = cache_reads
            response = client.get(paths[i % len(paths)])
            if response.status_code != 200:
                msg = f"{paths[i % len(paths)]} answered {response.status_code}"
                raise RuntimeError(msg)

        return run

    ops = {}
    for target in targets:
        ops[f"{target.path} cache"] = op(target, True)
        ops[f"{target.path} postgresql"] = op(target, False)
    ops["floor"] = redis_floor(ids)
    try:
        found = interleaved(ops, n=args.in_process, warmup=min(200, args.in_process))
    finally:
        settings.CATALOG_CACHE_READS = True
    for target in targets:
        cache, database = found[f"{target.path} cache"], found[f"{target.path} postgresql"]
        table.section(
            f"{target.heading} in this process (Django test client), "
            f"{args.in_process:,} of each, interleaved"
        )
        table.add(
            ratio_row(
                "cache hit",
                cache.wall_us,
                "PostgreSQL only",
                database.wall_us,
                cpu=cache.cpu_us,
                baseline_cpu=database.cpu_us,
            )
        )
        table.add(
            Row(
                "= requests/s one thread",
                f"{1e6 / cache.wall_us:,.0f} req/s",
                f"PostgreSQL only {1e6 / database.wall_us:,.0f} req/s",
                f"{database.wall_us / cache.wall_us:.2f}x",
            )
        )
        table.add(
            ratio_row(
                "cache hit vs its Redis floor",
                cache.wall_us,
                "2 raw HGETALLs",
                found["floor"].wall_us,
                cpu=cache.cpu_us,
                baseline_cpu=found["floor"].cpu_us,
            )
        )
    table.notes.append(
        "Redis floor of the in-process rows: raw HGETALLs of the part's and its stock's keys "
        "(the two rows a cache hit reads), on the engine's own client, interleaved with the "
        "views; the rest of a cache hit is Django, the view and its template."
    )
    if missing:
        table.section(f"{PAGE.heading} in this process (Django test client)")
        table.add(Row("cache hit", "not measured", missing))


def redis_floor(ids: list[int]) -> Callable[[int], None]:
    """What a cache hit reads, by the minimum path: a raw redis-py HGETALL of the part's key
    and of its stock's key, on the engine's own client and pool (``bench/cache.py``'s floor of
    one ``repository.get``, twice: the detail reads the part and its stock)."""
    from catalog.models import Part, StockLevel
    from sync.cache.connection import client as engine_client
    from sync.cache.keys import cache_key

    client = engine_client()
    keys = [
        (cache_key(Part._meta.label_lower, pk), cache_key(StockLevel._meta.label_lower, pk))
        for pk in ids
    ]

    def run(i: int) -> None:
        part, stock = keys[i % len(keys)]
        if not client.hgetall(part) or not client.hgetall(stock):
            msg = f"{part} or {stock} is not in Redis: the floor would time a miss"
            raise RuntimeError(msg)

    return run


# --------------------------------------------------------------------------- commit -> browser

# Runs before the page's own scripts (Playwright's init script, not subject to the page's CSP):
# every `stock` frame the page's EventSource receives, with its arrival time, recorded by a
# listener added in the constructor, i.e. before the page's listeners run.
BROWSER_INIT = """
(() => {
  const now = () => performance.timeOrigin + performance.now();
  const bench = (window.__bench = { frames: [], dom: [] });
  const Native = window.EventSource;
  if (!Native) return;
  window.EventSource = class extends Native {
    constructor(url, init) {
      super(url, init);
      this.addEventListener("stock", (event) => {
        bench.frames.push([event.lastEventId, now(), event.data]);
      });
    }
  };
})();
"""

# Every change of the part's available stock as the page's DOM shows it, with the time the
# MutationObserver saw it (same clock as time.time() in this process: the machine's).
BROWSER_OBSERVE = """
(part) => {
  const now = () => performance.timeOrigin + performance.now();
  const selector = `[data-part="${part}"] [data-field="available_stock"]`;
  const read = () => {
    const element = document.querySelector(selector);
    return element ? element.textContent.trim() : null;
  };
  let last = read();
  if (last === null) throw new Error(`no ${selector} on the page`);
  new MutationObserver(() => {
    const seen = now();
    const text = read();
    if (text !== last) {
      last = text;
      window.__bench.dom.push([text, seen]);
    }
  }).observe(document.documentElement, {
    subtree: true, childList: true, characterData: true, attributes: true,
  });
  return last;
}
"""
BROWSER_GOAL_MS = 250.0
BROWSER_WARMUP = 3


def bench_browser(table: Table, ids: list[int], args: argparse.Namespace) -> None:
    """Commit-to-browser latency: headless Chromium holds the product page open (its script
    subscribed to ``/api/events``); each staff stock update is timed from its COMMIT to the
    moment the page's DOM shows the new available stock."""
    from tests.browser import CHROMIUM, CHROMIUM_ARGS

    part = ids[1]
    table.section(
        f"commit -> browser: a staff stock update until the open product page "
        f"/parts/<id>/ shows it, {args.browser_updates} updates one after another "
        f"(after {BROWSER_WARMUP} unmeasured), headless Chromium, the cache-reads uvicorn worker"
    )
    if not CHROMIUM.exists():
        table.add(
            Row(
                "commit -> page shows it",
                "skipped",
                f"{CHROMIUM} is missing: apt-get install chromium",
            )
        )
        return
    # NOTE: Playwright's sync API runs an event loop in this thread; the ORM calls between
    # browser steps are plain synchronous code.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    server = args.servers.pair()["cache"]
    committed: dict[str, float] = {}
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
            )
            try:
                page = browser.new_page()
                page.add_init_script(BROWSER_INIT)
                url = f"{server.base}/parts/{part}/"
                response = page.goto(url)
                if response is None or response.status != 200:
                    status = response.status if response else "no response"
                    table.add(
                        Row(
                            "commit -> page shows it",
                            "not measured",
                            f"/parts/{part}/ answered {status}",
                        )
                    )
                    return
                marked = page.evaluate(
                    "[...document.querySelectorAll('[data-part]')].map((e) => e.dataset.part)"
                )
                if str(part) not in marked:
                    msg = (
                        f'the page has no [data-part="{part}"] (it has data-part={marked}): '
                        "its live script cannot find the part"
                    )
                    raise RuntimeError(msg)
                try:
                    # NOTE: a selector, not wait_for_function: an expression is polled with
                    # eval, which the page's CSP refuses (an EvalError at once, which looked
                    # like a timeout whenever the page was not live yet).
                    page.locator('html[data-live="live"]').wait_for(
                        state="attached", timeout=30_000
                    )
                except PlaywrightError as e:
                    live = page.evaluate("document.documentElement.dataset.live")
                    msg = (
                        f"the page never went live in 30 s (data-live={live!r}; "
                        f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
                    )
                    raise RuntimeError(msg) from e
                page.evaluate(BROWSER_OBSERVE, part)
                for n in range(BROWSER_WARMUP + args.browser_updates):
                    available = str(200 + n)  # distinct from the initial 99 and each other
                    at = committed_stock_update(part, int(available))
                    if n >= BROWSER_WARMUP:
                        committed[available] = at
                    try:
                        page.wait_for_function(
                            "v => window.__bench.dom.some((d) => d[0] === v)",
                            arg=available,
                            timeout=10_000,
                        )
                    except PlaywrightError as e:
                        shown = page.evaluate("window.__bench.dom.slice(-3)")
                        msg = f"the page did not show {available} within 10 s (last seen: {shown})"
                        raise RuntimeError(msg) from e
                seen = page.evaluate("window.__bench")
            finally:
                browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous
    _browser_rows(table, committed, seen)


def _browser_rows(table: Table, committed: dict[str, float], seen: dict) -> None:
    shown: dict[str, float] = {}
    for text, at in seen["dom"]:
        shown.setdefault(text, at / 1000)
    frames: dict[str, tuple[float, float]] = {}  # available -> (stream append, frame arrival)
    for event_id, at, data in seen["frames"]:
        available = str(json.loads(data)["data"]["available_stock"])
        # A stream id's first half is the Redis server's clock (ms) when XADD ran.
        frames.setdefault(available, (int(event_id.split("-")[0]) / 1000, at / 1000))
    totals = [(shown[v] - c) * 1000 for v, c in committed.items()]
    p50, p99, worst = percentiles(totals)
    verdict = "met" if p99 < BROWSER_GOAL_MS else "MISSED"
    table.add(Row("commit -> page shows it p50", f"{p50:.1f} ms"))
    table.add(
        Row(
            "commit -> page shows it p99",
            f"{p99:.1f} ms",
            "",
            "",
            f"< {BROWSER_GOAL_MS:.0f} ms",
            verdict,
        )
    )
    table.add(Row("commit -> page shows it max", f"{worst:.1f} ms"))
    if not all(v in frames for v in committed):
        table.add(
            Row(
                "  (no split)",
                "",
                "the page's stock frames were not seen through window.EventSource",
            )
        )
        return
    segments = {
        "commit -> stream append": [(frames[v][0] - c) * 1000 for v, c in committed.items()],
        "stream append -> SSE frame in page": [
            (frames[v][1] - frames[v][0]) * 1000 for v in committed
        ],
        "SSE frame -> DOM shows it": [(shown[v] - frames[v][1]) * 1000 for v in committed],
    }
    for name, values in segments.items():
        s50, s99, _ = percentiles(values)
        table.add(Row(f"  {name} p50", f"{s50:.1f} ms", f"p99 {s99:.1f} ms"))
    table.notes.append(
        "commit -> browser: the COMMIT is timed in this process (time.time() before the "
        "on-commit write-through), the append by its stream id (Redis' clock, ms: ±1 ms), the "
        "frame and the DOM by the page (performance.timeOrigin + now()); one machine clock."
    )
    if verdict == "MISSED":
        worst_segment = max(segments, key=lambda name: percentiles(segments[name])[1])
        table.notes.append(
            f"commit -> browser p99 goal missed: the largest p99 share is {worst_segment}."
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
                arrivals.setdefault(quantity, []).append(time.time())
    finally:
        writer.close()


def _raise_open_files_limit(clients: int) -> int:
    """Room for ``clients`` sockets here (the uvicorn child inherits the limit, and holds as
    many): the clients this limit allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = clients * 2 + 200
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(needed, hard), hard))
    allowed = (min(max(soft, needed), hard) - 200) // 2
    if allowed < clients:
        log(f"open files limited to {hard}: {allowed:,} SSE clients instead of {clients:,}")
    return min(clients, allowed)


def bench_sse(table: Table, ids: list[int], args: argparse.Namespace) -> None:
    import httpx

    clients = _raise_open_files_limit(args.sse_clients)
    part = ids[0]
    server = Server(cache_reads=True)
    try:
        server.wait_listening()
        # The first requests import and build what every request needs (routers, the Redis
        # clients, the hub): warm them so that "idle" is a server ready to serve.
        httpx.get(f"{server.base}/api/parts/{part}", timeout=30).raise_for_status()

        async def warm() -> None:
            ready, counter = asyncio.Event(), [0]
            task = asyncio.create_task(_sse_client(server.port, part, ready, counter, {}, 1))
            await asyncio.wait_for(ready.wait(), timeout=60)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

        asyncio.run(warm())
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
                quantity = 1_000 + n
                sent[quantity] = await asyncio.to_thread(committed_stock_update, part, quantity)
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
    log(
        "per update, ms to the last client: "
        + ", ".join(f"{(max(arrivals.get(q, [at])) - at) * 1000:.0f}" for q, at in sent.items())
    )
    everyone = [
        (max(arrivals[q]) - at) * 1000
        for q, at in sent.items()
        if len(arrivals.get(q, ())) == clients
    ]
    table.section(
        f"GET /api/events: one uvicorn process, {clients:,} idle clients (asyncio, this "
        f"process), {len(sent)} stock updates fanned out to all"
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
            "server memory (RSS)",
            f"{held_mb:,.0f} MB",
            f"idle {idle_mb:,.0f} MB",
            f"{(held_mb - idle_mb) * 1024 / clients:.1f} KB/client",
        )
    )
    # Per update: commit -> the last of the clients has it (every client has the event);
    # per (update, client) pair beside it.
    p50, p99, _ = percentiles(latencies)
    if len(everyone) < len(sent):
        table.add(Row("fan-out", f"{len(sent) - len(everyone)} updates missed some client"))
    if everyone:
        e50, e99, worst = percentiles(everyone) if len(everyone) > 1 else (everyone[0],) * 3
        table.add(
            Row(
                "fan-out p50, every client has it",
                f"{e50:.1f} ms",
                f"each client p50 {p50:.1f} ms",
                f"over {len(everyone)} updates",
            )
        )
        table.add(
            Row(
                "fan-out p99, every client has it",
                f"{e99:.1f} ms",
                f"each client p99 {p99:.1f} ms",
                f"max {worst:.1f} ms",
            )
        )
    table.add(Row("reference: Centrifugo", "p99 ≈ 200 ms", "at far larger scale"))


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", type=int, default=1_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument(
        "--in-process",
        type=int,
        default=3_000,
        help="requests of each kind through the test client",
    )
    parser.add_argument("--sse-clients", type=int, default=1_000)
    parser.add_argument("--sse-events", type=int, default=20)
    parser.add_argument(
        "--browser-updates",
        type=int,
        default=100,
        help="stock updates timed from commit to the open product page",
    )
    parser.add_argument(
        "--python-loader",
        action="store_true",
        help="use the asyncio loader even when wrk is installed",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="1 round of 2 s, 300 in-process, 1,000 SSE clients and 10 events",
    )
    parser.add_argument(
        "--only",
        choices=["in-process", "http", "browser", "sse"],
        action="append",
        help="run only this section (repeatable)",
    )
    args = parser.parse_args(argv)
    # two samples at least where a percentile is taken over them
    minimums = {"browser_updates": 2, "sse_events": 2, "sse_clients": 1, "in_process": 1}
    for option, minimum in {**minimums, "rounds": 1, "parts": 2}.items():
        if getattr(args, option) < minimum:
            parser.error(f"--{option.replace('_', '-')} must be at least {minimum}")
    if args.quick:
        args.rounds, args.seconds, args.sse_events = 1, 2, 10
        args.in_process = 300
    sections = {
        "in-process": bench_in_process,
        "http": bench_http,
        "browser": bench_browser,
        "sse": bench_sse,
    }
    chosen = [name for name in sections if not args.only or name in args.only]
    # The in-process client is one address: the per-IP API limit would answer 429s.
    os.environ.setdefault("API_RATELIMIT_ENABLED", "false")
    env = setup_django()
    args.servers = Servers()
    failed: list[str] = []
    try:
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        if leftover := remove_parts():
            log(f"removed {leftover:,} rows left by an earlier run")
        ids = create_parts(args.parts)
        processes = Processes.discover()
        table = Table(
            "syncops catalog API benchmark (bench/api.py; ./dev bench api)\n"
            + "\n".join([*machine_lines(), cpu_line()])
        )
        usages = []
        try:
            for name in chosen:
                started = time.perf_counter()
                # NOTE: the uvicorn servers (and Chromium) are this process' children: their
                # CPU is in "child processes", the loader's and the test client's in "this".
                with processes.measure(name) as usage:
                    usages.append(usage)  # described even when a signal ends the section
                    try:
                        sections[name](table, ids, args)
                    # NOTE: any failure of one section is reported in the table (and the exit
                    # status) without hiding the figures of the others.
                    except Exception as e:  # noqa: BLE001
                        failed.append(name)
                        table.add(Row(f"{name}: FAILED", f"{type(e).__name__}: {e}"))
                        log(f"section {name} failed: {e!r}")
                log(f"section {name}: {time.perf_counter() - started:.1f} s")
        finally:
            table.notes.append(processes.names())
            table.notes.extend(usage.describe() for usage in usages)
            load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
            table.notes.append(f"load average at the end: {load}")
            print(table.render())
        return 1 if failed else 0
    finally:
        args.servers.stop()
        remove_parts()
        for name in env.stop():
            log(f"stopped the embedded {name} server of the bench profile")


if __name__ == "__main__":
    sys.exit(main())

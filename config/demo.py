"""``./dev demo``: the whole product on one machine, stopped cleanly by Ctrl-C.

Starts (or reuses) the embedded servers for every unset service URL, migrates, sets a fresh
random password on the ``admin`` superuser and prints it, loads demo data on the first run,
then runs a Celery worker, Celery beat and the web server until SIGINT/SIGTERM, when it stops
every child process and every server it started itself.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from http import HTTPStatus

from config.devservices import ROOT, Services

PYTHON = sys.executable
CHILD_STOP_DEADLINE_S = 15
READY_DEADLINE_S = 60


def say(message: str) -> None:
    print(f"[demo] {message}", flush=True)


def run_manage(*args: str) -> None:
    subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, check=True)


def spawn(name: str, argv: list[str]) -> subprocess.Popen:
    # Each child leads its own process group: Ctrl-C reaches only us, and we can stop the
    # child together with anything it forked (the worker's pool processes).
    proc = subprocess.Popen(argv, cwd=ROOT, start_new_session=True)
    say(f"started {name} (pid {proc.pid})")
    return proc


def stop_children(children: dict[str, subprocess.Popen]) -> None:
    for name, proc in children.items():
        if proc.poll() is None:
            say(f"stopping {name}")
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
    deadline = time.monotonic() + CHILD_STOP_DEADLINE_S
    for proc in children.values():
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def wait_until_healthy(url: str, children: dict[str, subprocess.Popen], stopping) -> bool:
    """Poll ``/health/`` until every check is OK, a child dies, or the deadline passes."""
    deadline = time.monotonic() + READY_DEADLINE_S
    while time.monotonic() < deadline and not stopping():
        if any(proc.poll() is not None for proc in children.values()):
            return False
        try:
            with urllib.request.urlopen(f"{url}?format=json", timeout=5) as response:  # noqa: S310
                if response.status == HTTPStatus.OK:
                    say(f"healthy: {', '.join(json.load(response))}")
                    return True
        except (OSError, ValueError):
            pass  # not listening yet, or a check is not OK yet (500)
        time.sleep(0.25)
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("DEMO_PORT", "8000")))
    parser.add_argument("--profile", default="dev",
                        help="embedded servers' directory under .run/ (default: dev)")
    parser.add_argument("--setup-only", action="store_true",
                        help="start servers, migrate and load data, then stop again")
    args = parser.parse_args(argv)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ["SYNCOPS_SERVICES_PROFILE"] = args.profile
    services = Services(args.profile)
    wanted = {
        "database": not os.environ.get("DATABASE_URL"),
        "cache": not os.environ.get("REDIS_URL"),
        "broker": not os.environ.get("CELERY_BROKER_URL"),
    }
    already = services.status()
    owned = {name for name, want in wanted.items() if want
             and not already[{"database": "postgres"}.get(name, name)]}

    children: dict[str, subprocess.Popen] = {}
    stopping = False

    def on_signal(signum, _frame) -> None:
        nonlocal stopping
        stopping = True

    # NOTE: installed before anything starts, so a Ctrl-C at any point still runs `finally`.
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        os.environ.update(services.start(**wanted, log=say))
        password = secrets.token_urlsafe(12)
        os.environ["DEMO_ADMIN_PASSWORD"] = password
        for step in (("migrate", "--noinput", "-v", "0"), ("demo_setup",)):
            if stopping:
                return 1
            run_manage(*step)
        url = f"http://{args.host}:{args.port}/admin/"
        if args.setup_only or stopping:
            return 0
        children["celery worker"] = spawn("celery worker", [
            PYTHON, "-m", "celery", "-A", "config", "worker", "-l", "info",
            "--concurrency", "2", "-n", "demo@%h"])
        children["celery beat"] = spawn("celery beat", [
            PYTHON, "-m", "celery", "-A", "config", "beat", "-l", "info",
            "--schedule", str(services.directory / "celerybeat-schedule")])
        children["web server"] = spawn("web server", [
            PYTHON, "manage.py", "runserver", "--noreload", f"{args.host}:{args.port}"])
        health = f"http://{args.host}:{args.port}/health/"
        if not wait_until_healthy(health, children, lambda: stopping):
            say(f"not healthy after {READY_DEADLINE_S}s: see the output above and {health}")
        say("")
        say(f"admin console: {url}")
        say(f"login:         admin / {password}")
        say(f"health:        {health}")
        say(f"metrics:       http://{args.host}:{args.port}/metrics (staff session)")
        say("press Ctrl-C to stop everything this demo started")
        while not stopping:
            for name, proc in children.items():
                if proc.poll() is not None:
                    say(f"{name} exited with status {proc.returncode}; stopping the demo")
                    stopping = True
            time.sleep(0.2)
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        stop_children(children)
        servers = {"database": services.postgres, "cache": services.cache,
                   "broker": services.broker}
        for name in ("broker", "cache", "database"):
            if name in owned:
                servers[name].stop()
                say(f"stopped embedded {name} server")
        kept = sorted(name for name, want in wanted.items() if want and name not in owned)
        if kept:
            # NOTE: they were running before the demo started (another command or session
            # uses them), so they are not the demo's to stop.
            say(f"left running (they were up before the demo): {', '.join(kept)}; "
                "stop them with ./dev services stop")
        say("all stopped")


if __name__ == "__main__":
    sys.exit(main())

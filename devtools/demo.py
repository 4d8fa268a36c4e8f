"""``./dev demo``: the whole product on one machine, stopped cleanly by Ctrl-C.

Starts (or reuses) the embedded servers for every unset service URL, migrates, sets a fresh
random password on the ``admin`` superuser and prints it, loads the apps' demo data
(``python -m devtools.demo_data``), then runs a Celery worker, Celery beat and the web server
until SIGINT/SIGTERM, when it stops every child process and every server it started itself.

It supervises its children: one that exits (a crash, an out-of-memory kill, a SIGKILL) is
started again after an exponential backoff (1 s, 2 s, 4 s … capped at 30 s; back to 1 s once a
child has run for a minute), and each restart is a line in the output. An embedded Redis it
uses that dies is started again (empty; the cache warms itself). Only SIGINT/SIGTERM
stops the demo. Production runs the same children under systemd with the same policy
(``deploy/systemd/``, docs/operations.md).

A demo that was killed (SIGKILL, a closed terminal) cannot clean up; its state file
(``.run/<profile>/demo.json``) lets the next demo stop the children it left behind and take
over the servers it had started.
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
from pathlib import Path

from devtools.devservices import ROOT, DevServiceError, Services, pid_alive, wait_until

PYTHON = sys.executable
CHILD_STOP_DEADLINE_S = 15
READY_DEADLINE_S = 60
# Restart backoff: BASE · 2^(restarts in a row), capped; a child that ran STABLE_S counts as
# healthy again (its next crash waits BASE). systemd's RestartSec/RestartSteps say the same.
RESTART_BASE_S = 1.0
RESTART_CAP_S = 30.0
STABLE_S = 60.0
SERVICE_URLS = {"database": "DATABASE_URL", "cache": "REDIS_URL", "broker": "CELERY_BROKER_URL"}


def say(message: str) -> None:
    print(f"[demo] {message}", flush=True)


def run_step(*argv: str) -> None:
    """One setup step in a child process (the URLs and the password are in its environment)."""
    subprocess.run([PYTHON, *argv], cwd=ROOT, check=True)


def web_server_argv(host: str, port: int) -> list[str]:
    """The ASGI server as the demo runs it.

    NOTE: ``--no-proxy-headers``: by default uvicorn takes the client's address from the
    ``X-Forwarded-For`` of any peer on 127.0.0.1, which anyone on the machine can write (and
    rotate past the login lock-out). The address is the peer's; when proxies stand in front,
    the project's own rule reads the header (``TRUSTED_PROXY_COUNT``, docs/security.md).
    """
    return [
        PYTHON,
        "-m",
        "uvicorn",
        "config.asgi:application",
        "--host",
        host,
        "--port",
        str(port),
        "--timeout-graceful-shutdown",
        "3",
        "--no-proxy-headers",
    ]


def spawn(name: str, argv: list[str]) -> subprocess.Popen:
    # Each child leads its own process group: Ctrl-C reaches only us, and we can stop the
    # child together with anything it forked (the worker's pool processes).
    proc = subprocess.Popen(argv, cwd=ROOT, start_new_session=True)
    say(f"started {name} (pid {proc.pid})")
    return proc


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-returncode).name}"
    return f"exited with status {returncode}"


class Supervisor:
    """Keeps each child running: one that exits is started again after a backoff."""

    def __init__(
        self, children: dict[str, subprocess.Popen], argvs: dict[str, list[str]], on_restart=None
    ) -> None:
        self.children = children
        self.argvs = argvs
        self.on_restart = on_restart  # called after a restart (the demo saves its state)
        self.restarts: dict[str, int] = dict.fromkeys(argvs, 0)
        self._in_a_row: dict[str, int] = dict.fromkeys(argvs, 0)
        self._started: dict[str, float] = dict.fromkeys(argvs, time.monotonic())
        self._due: dict[str, float] = {}  # name -> when its restart is due

    def start(self, name: str) -> None:
        self.children[name] = spawn(name, self.argvs[name])
        self._started[name] = time.monotonic()

    def tick(self) -> None:
        """Notice exited children, and start those whose backoff is over."""
        now = time.monotonic()
        for name, proc in list(self.children.items()):
            if name in self._due or proc.poll() is None:
                continue
            # NOTE: the whole group: a SIGKILLed worker leaves its pool processes behind,
            # and they would hold the old worker's tasks and connections.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            if now - self._started[name] >= STABLE_S:
                self._in_a_row[name] = 0
            delay = min(RESTART_CAP_S, RESTART_BASE_S * 2 ** self._in_a_row[name])
            self._in_a_row[name] += 1
            self._due[name] = now + delay
            say(
                f"{name} (pid {proc.pid}) {describe_exit(proc.returncode)}; "
                f"restarting it in {delay:g}s"
            )
        for name, due in list(self._due.items()):
            if now >= due:
                del self._due[name]
                self.restarts[name] += 1
                self.start(name)
                say(f"restarted {name} (restart {self.restarts[name]})")
                if self.on_restart:
                    self.on_restart()


SERVER_RETRY_S = 5.0


def restart_dead_servers(servers: dict, used: set[str], due: dict[str, float]) -> None:
    """An embedded Redis the demo uses that died (a SIGKILL, the OOM killer) is started
    again, empty (also one that was up before the demo: a dead server holds nobody's data),
    as a restarted cache is meant to come back (DESIGN I9): the engine notices the data loss
    and warms it by itself. A paused one is alive and left alone (it still holds
    its data); PostgreSQL is not restarted behind the operator's back."""
    now = time.monotonic()
    for name in ("cache", "broker"):
        server = servers[name]
        if name not in used or due.get(name, 0.0) > now or server.pid() is not None:
            continue
        say(f"embedded {name} Redis died; starting it again (empty)")
        try:
            server.start()
        except DevServiceError as error:
            say(
                f"could not start the {name} Redis again ({error}); retrying in {SERVER_RETRY_S:g}s"
            )
            due[name] = now + SERVER_RETRY_S
            continue
        say(f"restarted embedded {name} Redis (pid {server.pid()})")


def stop_children(children: dict[str, subprocess.Popen]) -> None:
    for name, proc in children.items():
        if proc.poll() is not None:
            # Exited on its own (and not yet restarted): what it forked may still run.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            continue
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
    from config.celery import app  # settings come from the environment set up above

    deadline = time.monotonic() + READY_DEADLINE_S
    # NOTE: first the worker's own answer to a control ping, so that /health/ is not polled
    # (and does not log a 500 with a traceback) while the worker is still starting.
    while time.monotonic() < deadline and not stopping():
        if any(proc.poll() is not None for proc in children.values()):
            return False
        if app.control.ping(timeout=0.5):
            break
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


# --------------------------------------------------------------------------- crash recovery


def _state_file(services: Services) -> Path:
    return services.directory / "demo.json"


def _save_state(services: Services, owned: set[str], children: dict[str, subprocess.Popen]) -> None:
    state = {
        "pid": os.getpid(),
        "owned": sorted(owned),
        "children": {name: proc.pid for name, proc in children.items()},
    }
    _state_file(services).write_text(json.dumps(state))


def recover_crashed_demo(services: Services) -> set[str]:
    """Stop what a killed demo left running; return the servers it owned (now ours)."""
    try:
        state = json.loads(_state_file(services).read_text())
    except (OSError, ValueError):
        return set()
    if pid_alive(state["pid"]):
        msg = f"another demo (pid {state['pid']}) is running on these servers; stop it first"
        raise SystemExit(msg)
    for name, pid in state["children"].items():
        # NOTE: only a process that still runs our interpreter: the pid may have been reused.
        if pid_alive(pid) and PYTHON in _cmdline(pid):
            say(f"stopping the {name} a killed demo left running (pid {pid})")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)
            if not wait_until(lambda pid=pid: not pid_alive(pid), timeout=CHILD_STOP_DEADLINE_S):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
    _state_file(services).unlink(missing_ok=True)
    return set(state["owned"])


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


# --------------------------------------------------------------------------- the demo


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("DEMO_PORT", "8000")))
    parser.add_argument(
        "--profile", default="dev", help="embedded servers' directory under .run/ (default: dev)"
    )
    parser.add_argument(
        "--setup-only",
        action="store_true",
        help="start servers, migrate and load data, then stop again",
    )
    args = parser.parse_args(argv)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ["SYNCOPS_SERVICES_PROFILE"] = args.profile
    services = Services(args.profile)
    servers = {"database": services.postgres, "cache": services.cache, "broker": services.broker}
    wanted = {name for name, variable in SERVICE_URLS.items() if not os.environ.get(variable)}
    inherited = recover_crashed_demo(services) & wanted
    owned = {name for name in wanted if not servers[name].is_running()} | inherited

    children: dict[str, subprocess.Popen] = {}
    stopping = False

    def on_signal(signum, _frame) -> None:
        nonlocal stopping
        stopping = True

    # NOTE: installed before anything starts, so a Ctrl-C at any point still runs `finally`.
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        _save_state(services, owned, children)
        os.environ.update(
            services.start(**{name: name in wanted for name in SERVICE_URLS}, log=say)
        )
        password = secrets.token_urlsafe(12)
        os.environ["DEMO_ADMIN_PASSWORD"] = password
        for step in (
            ("manage.py", "migrate", "--noinput", "-v", "0"),
            ("-m", "devtools.demo_data"),
        ):
            if stopping:
                return 1
            run_step(*step)
        if args.setup_only or stopping:
            return 0
        supervisor = Supervisor(
            children,
            {
                "celery worker": [
                    PYTHON,
                    "-m",
                    "celery",
                    "-A",
                    "config",
                    "worker",
                    "-l",
                    "info",
                    "--concurrency",
                    "2",
                    "-n",
                    f"demo-{args.profile}@%h",
                ],
                "celery beat": [
                    PYTHON,
                    "-m",
                    "celery",
                    "-A",
                    "config",
                    "beat",
                    "-l",
                    "info",
                    "--schedule",
                    str(services.directory / "celerybeat-schedule"),
                ],
                # NOTE: an ASGI server, not runserver: /api/events (Server-Sent Events) holds each
                # client open, and one uvicorn process holds thousands of them on its event loop.
                "web server": web_server_argv(args.host, args.port),
            },
            on_restart=lambda: _save_state(services, owned, children),
        )
        for name in supervisor.argvs:
            supervisor.start(name)
        _save_state(services, owned, children)
        base = f"http://{args.host}:{args.port}"
        if not wait_until_healthy(f"{base}/health/", children, lambda: stopping):
            say(f"not healthy after {READY_DEADLINE_S}s: see the output above and {base}/health/")
        say("")
        say(f"storefront:    {base}/parts/")
        say(f"admin console: {base}/admin/")
        say(f"login:         admin / {password}")
        say(f"health:        {base}/health/")
        say(f"metrics:       {base}/metrics (staff session)")
        say(f"catalog API:   {base}/api/parts  (docs: {base}/api/docs, events: {base}/api/events)")
        say("press Ctrl-C to stop everything this demo started; a child that dies is restarted")
        server_due: dict[str, float] = {}
        while not stopping:
            supervisor.tick()
            restart_dead_servers(servers, wanted, server_due)
            time.sleep(0.2)
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        stop_children(children)
        for name in ("broker", "cache", "database"):
            if name in owned and servers[name].stop():
                say(f"stopped embedded {name} server")
        if kept := sorted(wanted - owned):
            # NOTE: they were running before the demo started (another command or session
            # uses them), so they are not the demo's to stop.
            say(
                f"left running (they were up before the demo): {', '.join(kept)}; "
                "stop them with ./dev services stop"
            )
        _state_file(services).unlink(missing_ok=True)
        say("all stopped")


if __name__ == "__main__":
    sys.exit(main())

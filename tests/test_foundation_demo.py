"""``./dev demo`` end to end, on servers of its own: it serves the admin login and a healthy
``/health/``, its printed password logs in, Ctrl-C (SIGINT) leaves no process behind, and a
second start reuses the data."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import urllib.parse
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path

import pytest

from devtools.demo import recover_crashed_demo
from devtools.devservices import ROOT, Services, pid_alive, wait_until

SERVICE_URLS = ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "SYNC_REDIS_URL")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Demo:
    """One run of ``python -m devtools.demo`` with its output in a file."""

    def __init__(self, profile: str, port: int, log: Path) -> None:
        env = {k: v for k, v in os.environ.items() if k not in SERVICE_URLS}
        self.log = log
        self.base = f"http://127.0.0.1:{port}"
        with log.open("w") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "devtools.demo", "--profile", profile, "--port", str(port)],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, pattern: str, timeout: float = 120) -> re.Match:
        found = wait_until(
            lambda: re.search(pattern, self.output()) or self.proc.poll() is not None,
            timeout=timeout,
        )
        match = re.search(pattern, self.output())
        assert found and match, f"demo never printed {pattern!r}:\n{self.output()}"
        return match

    def child_pids(self) -> list[int]:
        return [int(pid) for pid in re.findall(r"started .+ \(pid (\d+)\)", self.output())]

    def interrupt(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout=60)

    def kill(self) -> None:
        """Teardown: whatever happened, this run's demo process is gone afterwards."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def _server_pids(services: Services) -> list[int]:
    pids = [server.pid() for server in (services.cache, services.broker)]
    postmaster = services.postgres._postmaster()
    return [pid for pid in [*pids, postmaster and postmaster.pid] if pid]


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and pid_alive(int(entry.name)):
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if text in cmdline:
                found.append(f"{entry.name}: {cmdline}")
    return found


def _get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - our http:// URL
        return response.status, response.read().decode()


def _log_in(base: str, password: str) -> str:
    """Log in through the admin form, as a browser would; return the page it lands on."""
    jar = CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    opener.open(f"{base}/admin/login/", timeout=10).read()
    csrf = next(cookie.value for cookie in jar if cookie.name == "csrftoken")
    form = urllib.parse.urlencode(
        {"csrfmiddlewaretoken": csrf, "username": "admin", "password": password, "next": "/admin/"}
    ).encode()
    request = urllib.request.Request(  # noqa: S310 - our http:// URL
        f"{base}/admin/login/", data=form, headers={"Referer": f"{base}/admin/login/"}
    )
    with opener.open(request, timeout=10) as response:
        return response.read().decode()


@pytest.fixture
def demo_profile() -> str:
    # "test-<pid>-demo": a run killed mid-test has it pruned by the next run.
    profile = f"test-{os.getpid()}-demo"
    yield profile
    services = Services(profile)
    recover_crashed_demo(services)  # children a failed test's demo left behind
    services.stop()
    shutil.rmtree(services.directory, ignore_errors=True)


@pytest.mark.slow
def test_demo_serves_the_console_stops_cleanly_and_keeps_its_data(
    demo_profile: str, tmp_path: Path
) -> None:
    services = Services(demo_profile)
    demo = Demo(demo_profile, _free_port(), tmp_path / "first.log")
    try:
        password = demo.wait_for(r"login: +admin / (\S+)").group(1)
        assert "initialised and started embedded PostgreSQL" in demo.output()
        assert "created superuser admin" in demo.output()
        assert "healthy: " in demo.output()

        status, page = _get(f"{demo.base}/admin/login/")
        assert (status, "<title>Log in | syncops console</title>" in page) == (200, True)
        status, health = _get(f"{demo.base}/health/?format=json")
        assert status == 200
        assert json.loads(health) == dict.fromkeys(
            [
                "Database(alias='default')",
                "Cache Redis",
                "Broker Redis",
                "Celery worker",
                "Cache warmth",
            ],
            "OK",
        )
        assert "Operations dashboard" in _log_in(demo.base, password)

        pids = demo.child_pids() + _server_pids(services)
        assert len(pids) == 6  # worker, beat, web server, cache, broker, PostgreSQL
        pg_version = services.postgres.pgdata / "PG_VERSION"
        initialised = pg_version.stat().st_mtime_ns
        assert demo.interrupt() == 0
    finally:
        demo.kill()

    assert "all stopped" in demo.output()
    assert [pid for pid in pids if pid_alive(pid)] == []
    assert _processes_mentioning(str(services.directory)) == []

    # A second start reuses the cluster and the superuser, and the new password works.
    again = Demo(demo_profile, _free_port(), tmp_path / "second.log")
    try:
        password = again.wait_for(r"login: +admin / (\S+)").group(1)
        assert "initialised" not in again.output()
        assert "reusing superuser admin" in again.output()
        assert pg_version.stat().st_mtime_ns == initialised  # the same cluster, not a new one
        assert "Operations dashboard" in _log_in(again.base, password)
        assert again.interrupt() == 0
    finally:
        again.kill()
    assert _processes_mentioning(str(services.directory)) == []


@pytest.mark.slow
def test_a_killed_demo_is_cleaned_up_by_the_next_one(demo_profile: str, tmp_path: Path) -> None:
    services = Services(demo_profile)
    crashed = Demo(demo_profile, _free_port(), tmp_path / "crashed.log")
    try:
        crashed.wait_for(r"login: +admin / (\S+)")
        orphans = crashed.child_pids() + _server_pids(services)
        crashed.proc.kill()  # SIGKILL: no chance to clean up
        crashed.proc.wait(timeout=10)
    finally:
        crashed.kill()
    assert [pid for pid in orphans if pid_alive(pid)] == orphans  # all left running

    demo = Demo(demo_profile, _free_port(), tmp_path / "next.log")
    try:
        demo.wait_for(r"login: +admin / (\S+)")
        assert "a killed demo left running" in demo.output()
        assert [pid for pid in crashed.child_pids() if pid_alive(pid)] == []
        assert "reusing embedded PostgreSQL" in demo.output()
        assert demo.interrupt() == 0
    finally:
        demo.kill()
    # The servers the killed demo started were taken over, and stopped with the rest.
    assert [pid for pid in orphans if pid_alive(pid)] == []
    assert _processes_mentioning(str(services.directory)) == []

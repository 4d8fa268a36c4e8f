"""The demo supervises its children: a SIGKILLed worker or web server is started again (with a
line saying so) while the rest keeps serving, and only SIGINT stops everything."""

from __future__ import annotations

import json
import os
import re
import signal
import urllib.error
from pathlib import Path

import pytest

from devtools.devservices import Services, pid_alive
from tests.test_foundation_demo import (
    Demo,
    _free_port,
    _get,
    _log_in,
    _processes_mentioning,
    _server_pids,
    demo_profile,  # noqa: F401 - the fixture
)
from tests.waiting import wait_until

pytestmark = pytest.mark.slow


def _children_of(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (the prefork worker's pool)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # "pid (comm) state ppid …": comm may hold spaces, so split after the last ")".
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _pid_of(demo: Demo, name: str) -> int:
    """The newest pid the demo printed for this child."""
    pattern = rf"started {name} \(pid (\d+)\)"
    demo.wait_for(pattern)
    return int(re.findall(pattern, demo.output())[-1])


def _health(demo: Demo) -> dict[str, str]:
    try:
        return json.loads(_get(f"{demo.base}/health/?format=json")[1])
    except urllib.error.HTTPError as error:  # 500: a check is not OK
        return json.loads(error.read())


def test_a_killed_worker_and_web_server_are_restarted_and_sigint_stops_all(
    demo_profile: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    services = Services(demo_profile)
    demo = Demo(demo_profile, _free_port(), tmp_path / "demo.log")
    try:
        password = demo.wait_for(r"login: +admin / (\S+)", timeout=300).group(1)
        assert _health(demo)["Celery worker"] == "OK"
        worker = _pid_of(demo, "celery worker")
        pool = _children_of(worker)
        assert pool  # --concurrency 2: its pool processes

        os.kill(worker, signal.SIGKILL)
        demo.wait_for(rf"celery worker \(pid {worker}\) was killed by SIGKILL; restarting")
        demo.wait_for(r"restarted celery worker \(restart 1\)")
        # The web server kept serving throughout, and the new worker answers the ping.
        assert _get(f"{demo.base}/admin/login/")[0] == 200
        wait_until(
            lambda: _health(demo).get("Celery worker") == "OK",
            timeout=60,
            interval=0.5,
            what="a new worker answering the health check's ping",
        )
        new_worker = _pid_of(demo, "celery worker")
        assert new_worker != worker and pid_alive(new_worker)
        assert demo.proc.poll() is None
        # The console shows it: the worker's heartbeat row counts the restart.
        wait_until(
            lambda: re.search(
                r"worker demo-\S+</dt><dd class=\"good\">alive · 1 restart<",
                _log_in(demo.base, password),
            ),
            timeout=60,
            interval=1,
            what="the restart on the dashboard",
        )
        # The killed worker's pool went with it (no orphan holding its tasks).
        wait_until(
            lambda: not [pid for pid in pool if pid_alive(pid)],
            timeout=10,
            what="the old pool processes gone",
        )

        web = _pid_of(demo, "web server")
        os.kill(web, signal.SIGKILL)
        demo.wait_for(r"restarted web server \(restart 1\)")
        wait_until(
            lambda: _get(f"{demo.base}/admin/login/")[0] == 200,
            timeout=60,
            interval=0.5,
            ignoring=(OSError,),
            what="the restarted web server",
        )
        assert demo.proc.poll() is None

        # The cache Redis SIGKILLed: the demo starts it again (empty) and it warms itself.
        cache = services.cache.pid()
        os.kill(cache, signal.SIGKILL)
        demo.wait_for(r"restarted embedded cache Redis \(pid \d+\)", timeout=60)
        assert services.cache.pid() not in (None, cache)
        wait_until(
            lambda: (
                {k: v for k, v in _health(demo).items() if k in ("Cache Redis", "Cache warmth")}
                == {"Cache Redis": "OK", "Cache warmth": "OK"}
            ),
            timeout=120,
            interval=1,
            ignoring=(OSError,),
            what="the restarted cache Redis answering and warm again",
        )

        pids = [
            _pid_of(demo, "celery worker"),
            _pid_of(demo, "celery beat"),
            _pid_of(demo, "web server"),
            *_server_pids(services),
        ]
        assert demo.interrupt() == 0
    finally:
        demo.kill()
    assert "all stopped" in demo.output()
    assert [pid for pid in pids if pid_alive(pid)] == []
    assert _processes_mentioning(str(services.directory)) == []


@pytest.mark.parametrize(
    "unit", ["syncops-web.service", "syncops-worker@.service", "syncops-beat.service"]
)
def test_the_production_units_restart_with_the_demos_policy(unit: str) -> None:
    import configparser

    from devtools.demo import RESTART_BASE_S, RESTART_CAP_S
    from devtools.devservices import ROOT

    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read(ROOT / "deploy" / "systemd" / unit)
    service = parser["Service"]
    assert service["Restart"] == "always"
    assert service["RestartSec"] == f"{RESTART_BASE_S:g}s"
    assert service["RestartMaxDelaySec"] == f"{RESTART_CAP_S:g}s"
    assert parser["Unit"]["StartLimitIntervalSec"] == "0"  # never gives up

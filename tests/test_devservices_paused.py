"""A command started while the demo's cache Redis is paused (SIGSTOP) must not replace it with
an empty one: it says what it found and that it left it alone."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest
import redis

from devtools.devservices import (
    ROOT,
    RUN_DIR,
    DevServiceError,
    RedisServer,
    pid_alive,
    wait_until,
)


@pytest.fixture
def profile() -> Iterator[str]:
    """A private profile (``test-<pid>-paused``: a crashed run's is pruned by the next one)."""
    name = f"test-{os.getpid()}-paused"
    directory = RUN_DIR / name
    directory.mkdir(parents=True, exist_ok=True)
    yield name
    server = RedisServer(directory, "cache")
    if (pid := server.pid()) is not None:
        os.kill(pid, signal.SIGCONT)
    server.stop()
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def paused_cache(profile: str) -> Iterator[tuple[RedisServer, int]]:
    server = RedisServer(RUN_DIR / profile, "cache")
    server.start()
    redis.Redis(unix_socket_path=str(server.socket_path)).set("precious", "still here")
    pid = server.pid()
    os.kill(pid, signal.SIGSTOP)
    yield server, pid
    if pid_alive(pid):
        os.kill(pid, signal.SIGCONT)


def _data_survived(server: RedisServer, pid: int) -> bool:
    os.kill(pid, signal.SIGCONT)
    client = redis.Redis(unix_socket_path=str(server.socket_path), socket_timeout=5)
    try:
        return server.pid() == pid and client.get("precious") == b"still here"
    finally:
        client.close()


def test_starting_a_paused_server_refuses_and_keeps_it(paused_cache) -> None:
    server, pid = paused_cache
    lines: list[str] = []
    server.log = lines.append

    with pytest.raises(DevServiceError) as refused:
        server.start()

    message = str(refused.value)
    assert f"pid {pid}" in message
    assert "paused" in message
    assert "no new server was started" in message
    assert f"kill -CONT {pid}" in message
    assert _data_survived(server, pid)


def test_manage_command_with_the_cache_paused_says_so_and_leaves_it(
    profile: str, paused_cache
) -> None:
    server, pid = paused_cache
    environment = {key: value for key, value in os.environ.items() if key != "REDIS_URL"}
    # PostgreSQL and the broker are this run's; only the cache comes from the profile.
    environment.update(SYNCOPS_SERVICES_PROFILE=profile, DJANGO_SETTINGS_MODULE="config.settings")
    result = subprocess.run(
        [sys.executable, "-m", "devtools.manage", "check"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 2, result.stderr
    assert f"redis-server cache (pid {pid}" in result.stderr
    assert "paused" in result.stderr
    assert "Traceback" not in result.stderr
    assert _data_survived(server, pid)


def test_a_live_server_that_does_not_answer_in_time_is_refused_too(
    paused_cache, monkeypatch
) -> None:
    """Running (not paused) but silent, e.g. busy: waited for, then left alone as well."""
    server, pid = paused_cache
    monkeypatch.setattr("devtools.devservices._pid_state", lambda _pid: "S")
    monkeypatch.setattr(RedisServer, "ANSWER_DEADLINE_S", 0.2)

    with pytest.raises(DevServiceError, match=r"does not answer on its socket within 0\.2 s"):
        server.start()
    assert _data_survived(server, pid)


def test_a_dead_leftover_is_cleared_and_restarted_saying_so(profile: str) -> None:
    server = RedisServer(RUN_DIR / profile, "cache")
    server.start()
    old = server.pid()
    os.kill(old, signal.SIGKILL)
    assert not server.is_running() or server.pid() != old
    lines: list[str] = []
    server.log = lines.append
    wait_until(lambda: not pid_alive(old), timeout=5)
    assert server.start() is True
    assert any("process is gone" in line for line in lines)
    assert server.pid() not in {None, old}

"""The embedded servers' lifecycle: reuse by later commands, restart after a crash, and a clean
stop (a paused leftover is refused: tests/test_devservices_paused.py). Each test runs its own
servers in a private directory."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from devtools.devservices import (
    ROOT,
    RUN_DIR,
    DevServiceError,
    PostgresServer,
    RedisServer,
    Services,
    pid_alive,
    prune_test_runs,
    wait_until,
)


@pytest.fixture
def run_dir() -> Iterator[Path]:
    # NOTE: unix socket paths are limited to 107 bytes; pytest's tmp_path is often longer.
    path = Path(tempfile.mkdtemp(prefix="syncops-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def redis_server(run_dir: Path) -> Iterator[RedisServer]:
    server = RedisServer(run_dir, "probe")
    yield server
    pid = server.pid()
    server.stop()
    assert pid is None or not pid_alive(pid)


def _in_another_process(code: str) -> dict:
    """Run ``code`` (which prints one JSON line) in a fresh interpreter, as a later command."""
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def _pid_of_redis_in_another_process(server: RedisServer) -> dict:
    return _in_another_process(
        "import json; from pathlib import Path; from devtools.devservices import RedisServer\n"
        f"s = RedisServer(Path({str(server.directory)!r}), {server.name!r})\n"
        "started = s.start()\n"
        "print(json.dumps({'started': started, 'pid': s.pid()}))\n"
    )


def _redis_server_pids(socket_path: Path) -> list[int]:
    """Every live redis-server process whose config serves ``socket_path``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or not pid_alive(int(entry.name)):
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if "redis-server" in cmdline and str(socket_path.parent) in cmdline:
            pids.append(int(entry.name))
    return pids


def test_redis_is_reused_by_a_later_command_not_duplicated(redis_server: RedisServer) -> None:
    assert redis_server.start() is True
    pid = redis_server.pid()
    assert pid is not None

    assert redis_server.start() is False
    assert redis_server.pid() == pid
    later = _pid_of_redis_in_another_process(redis_server)
    assert later == {"started": False, "pid": pid}
    assert _redis_server_pids(redis_server.socket_path) == [pid]
    assert redis.Redis(unix_socket_path=str(redis_server.socket_path)).ping()


def test_redis_killed_by_sigkill_is_restarted_on_the_same_socket(
    redis_server: RedisServer,
) -> None:
    redis_server.start()
    old_pid = redis_server.pid()
    os.kill(old_pid, signal.SIGKILL)
    assert wait_until(lambda: not pid_alive(old_pid), timeout=5)
    assert redis_server.socket_path.exists()  # the dead server's socket file stays behind
    assert not redis_server.is_running()

    later = _pid_of_redis_in_another_process(redis_server)
    assert later["started"] is True
    assert later["pid"] not in {None, old_pid}
    assert redis.Redis(unix_socket_path=str(redis_server.socket_path)).ping()
    assert _redis_server_pids(redis_server.socket_path) == [later["pid"]]


# A paused (hung) leftover is no longer replaced: tests/test_devservices_paused.py.


def test_redis_stop_ends_the_process_and_removes_the_socket(redis_server: RedisServer) -> None:
    redis_server.start()
    pid = redis_server.pid()
    assert redis_server.stop() is True
    assert not pid_alive(pid)
    assert not redis_server.socket_path.exists()
    assert redis_server.stop() is False


def test_redis_runs_without_persistence(redis_server: RedisServer) -> None:
    redis_server.start()
    client = redis.Redis(unix_socket_path=str(redis_server.socket_path))
    assert client.config_get("save") == {"save": ""}
    assert client.config_get("appendonly") == {"appendonly": "no"}


def test_redis_rejects_a_socket_path_too_long_for_unix_sockets(run_dir: Path) -> None:
    deep = run_dir / ("d" * 120)
    deep.mkdir()
    with pytest.raises(DevServiceError, match="107 bytes"):
        RedisServer(deep, "cache").start()


@pytest.mark.slow
def test_postgres_is_reused_by_a_later_command_and_stopped_cleanly(run_dir: Path) -> None:
    server = PostgresServer(run_dir)
    try:
        assert server.start() is True
        pid = server._postmaster().pid
        later = _in_another_process(
            "import json; from pathlib import Path\n"
            "from devtools.devservices import PostgresServer\n"
            f"s = PostgresServer(Path({str(run_dir)!r}))\n"
            "started = s.start()\n"
            "print(json.dumps({'started': started, 'pid': s._postmaster().pid,\n"
            "                  'version': s.psql('SELECT version()')}))\n"
        )
        assert later["started"] is False
        assert later["pid"] == pid
        assert "PostgreSQL" in later["version"]
        # The later command has exited; the server it attached to is still there.
        assert server.is_running()
    finally:
        server.stop()
    assert not server.is_running()
    assert not pid_alive(pid)


@pytest.mark.slow
def test_postgres_killed_by_sigkill_is_restarted_on_the_same_data(run_dir: Path) -> None:
    server = PostgresServer(run_dir)
    try:
        server.start()
        server.psql("CREATE TABLE survivor (id int); INSERT INTO survivor VALUES (42)")
        pid = server._postmaster().pid
        os.kill(pid, signal.SIGKILL)
        assert wait_until(lambda: not pid_alive(pid), timeout=10)
        # Its postmaster.pid and socket lock file stay behind, naming a dead (or zombie) pid.
        assert (server.pgdata / "postmaster.pid").exists()
        assert not server.is_running()

        assert server.start() is True
        assert server._postmaster().pid != pid
        assert "42" in server.psql("SELECT id FROM survivor")
    finally:
        server.stop()
    assert not server.is_running()


def test_prune_removes_only_the_servers_of_test_runs_that_are_gone() -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    stale = Services(f"test-{dead}-probe")
    live = Services(f"test-{os.getpid()}-probe")
    other = RUN_DIR / "testdata-not-a-profile"
    other.mkdir(exist_ok=True)
    try:
        stale.cache.start()
        pid = stale.cache.pid()

        removed = prune_test_runs()

        assert stale.profile in removed
        assert live.profile not in removed
        assert not stale.directory.exists()
        assert not pid_alive(pid)
        assert live.directory.is_dir()
        assert other.is_dir()
    finally:
        for services in (stale, live):
            services.stop()
            shutil.rmtree(services.directory, ignore_errors=True)
        shutil.rmtree(other, ignore_errors=True)

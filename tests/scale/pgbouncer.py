"""A real PgBouncer (Debian's ``pgbouncer`` package) in front of the test database, with one
entry per pooling mode: ``tx`` (transaction pooling) and ``session`` (session pooling)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import psycopg
from django.db import connection

from tests.waiting import wait_until


def pgbouncer_binary() -> str | None:
    return shutil.which("pgbouncer") or next(
        (p for p in ("/usr/sbin/pgbouncer",) if Path(p).exists()), None
    )


def _unprivileged_user() -> str:
    import pwd

    try:
        return pwd.getpwnam("pgserver").pw_name  # the embedded PostgreSQL runs as it
    except KeyError:
        return "nobody"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgBouncer:
    def __init__(self, binary: str, *, pool_size: int = 2) -> None:
        conf = connection.settings_dict
        host = conf.get("OPTIONS", {}).get("host") or conf["HOST"] or "127.0.0.1"
        port = conf["PORT"] or 5432
        self.user = conf["USER"] or "postgres"
        self.port = _free_port()
        # NOTE: a world-readable folder of its own: as root, pgbouncer drops to a user
        # (it refuses to run as root) that cannot enter pytest's 0700 tmp folders.
        self.folder = Path(tempfile.mkdtemp(prefix="pgb-"))
        self.folder.chmod(0o777)
        target = f"host={host} port={port} dbname={conf['NAME']} user={self.user}"
        (self.folder / "users.txt").write_text(f'"{self.user}" ""\n')
        (self.folder / "pgbouncer.ini").write_text(f"""
[databases]
tx = {target} pool_mode=transaction pool_size={pool_size}
session = {target} pool_mode=session pool_size={pool_size + 2}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {self.port}
unix_socket_dir =
auth_type = trust
auth_file = {self.folder / "users.txt"}
max_client_conn = 200
server_reset_query = DISCARD ALL
ignore_startup_parameters = extra_float_digits,options
logfile = {self.folder / "pgbouncer.log"}
pidfile = {self.folder / "pgbouncer.pid"}
""")
        for path in self.folder.iterdir():
            path.chmod(0o666)
        command = [binary, str(self.folder / "pgbouncer.ini")]
        if os.geteuid() == 0:  # the embedded server's own user can reach its socket folder
            command[1:1] = ["-u", _unprivileged_user()]
        self.proc = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        try:
            wait_until(self._answers, timeout=15)
        except BaseException:
            self.stop()
            raise

    def url(self, database: str) -> str:
        return f"postgres://{self.user}@127.0.0.1:{self.port}/{database}"

    def connect(self, database: str) -> psycopg.Connection:
        return psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            dbname=database,
            user=self.user,
            autocommit=True,
            prepare_threshold=None,
        )

    def _answers(self) -> bool:
        assert self.proc.poll() is None, self.log()
        try:
            with self.connect("tx") as conn:
                return conn.execute("SELECT 1").fetchone() == (1,)
        except psycopg.OperationalError:
            return False

    def log(self) -> str:
        path = self.folder / "pgbouncer.log"
        return path.read_text()[-3000:] if path.exists() else ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        shutil.rmtree(self.folder, ignore_errors=True)

"""``manage.py dbshell`` (the runbooks' way to change rows by hand) reaches the project's own
PostgreSQL: with the embedded server's socket given as ``?host=`` in DATABASE_URL it used to
start psql without a host, which reached whatever server listened on the default socket (on a
machine with a system PostgreSQL: another database, where the tables "do not exist")."""

from __future__ import annotations

import subprocess
import sys

import pytest
from django.db import connection

from config.env import ROOT
from tests.subprocesses import child_env

pytestmark = pytest.mark.django_db


def test_dbshell_connects_to_the_configured_server() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('data_directory')")
        (expected,) = cursor.fetchone()
    done = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "dbshell",
            "--",
            "-tAc",
            "SELECT current_setting('data_directory')",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env=child_env(),
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == expected

"""Run Python in a separate process against the test run's database and Redis."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from urllib.parse import quote

from django.conf import settings
from django.db import connection

from config.env import ROOT


def database_url() -> str:
    """A DATABASE_URL for the test database this run uses (pytest-django's test_… name)."""
    conf = connection.settings_dict
    user = quote(conf["USER"] or "postgres")
    password = f":{quote(conf['PASSWORD'])}" if conf["PASSWORD"] else ""
    socket_dir = conf.get("OPTIONS", {}).get("host")
    if socket_dir:
        return f"postgres://{user}{password}@/{conf['NAME']}?host={socket_dir}"
    port = f":{conf['PORT']}" if conf["PORT"] else ""
    return f"postgres://{user}{password}@{conf['HOST']}{port}/{conf['NAME']}"


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DATABASE_URL": database_url(),
            "REDIS_URL": settings.SYNC_REDIS_URL,
            "SYNC_REDIS_URL": settings.SYNC_REDIS_URL,
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
            "COVERAGE_PROCESS_START": "",
            # the API rate limits as this test has them (tests/conftest.py turns them off)
            "API_RATELIMIT_ENABLED": str(settings.API_RATELIMIT_ENABLED),
        }
    )
    return env


PRELUDE = "import django\ndjango.setup()\n"


def popen_python(code: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", PRELUDE + textwrap.dedent(code)],
        cwd=ROOT,
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_python(code: str, timeout: float = 60) -> subprocess.CompletedProcess:
    proc = popen_python(code)
    out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def worker_answers(app, hostname: str) -> bool:
    """Whether the Celery worker ``hostname`` answers a control-channel ping, over a new
    broker connection each time: a pooled one the broker closed meanwhile (seen twice in CI as
    a broken pipe, in both passes) is a "not yet" to retry, not an error that fails the
    test's set-up."""
    from kombu.exceptions import OperationalError
    from redis.exceptions import ConnectionError as RedisConnectionError

    try:
        with app.connection_for_write() as conn:
            return bool(app.control.ping(destination=[hostname], timeout=0.5, connection=conn))
    except (OperationalError, RedisConnectionError, OSError):
        return False

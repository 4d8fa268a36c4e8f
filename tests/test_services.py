"""The servers under the tests are real PostgreSQL and Redis, and faults are real signals."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import redis
from django.db import connection

from devtools.devservices import ROOT


@pytest.mark.django_db
def test_database_is_real_postgresql() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT version()")
        (version,) = cursor.fetchone()
    assert version.startswith("PostgreSQL ")
    assert connection.vendor == "postgresql"


def test_cache_redis_is_a_real_server(redis_control) -> None:
    client = redis.Redis.from_url(redis_control.url)
    info = client.info("server")
    assert info["redis_version"].split(".")[0] in {"6", "7", "8"}
    assert info["process_id"] == redis_control.pid()
    # The cache runs without persistence (DESIGN I9): a restart can only come back empty.
    assert client.config_get("save")["save"] == ""
    assert client.config_get("appendonly")["appendonly"] == "no"


def test_paused_cache_times_out_and_recovers_after_resume(redis_control) -> None:
    client = redis.Redis.from_url(
        redis_control.url, socket_timeout=0.3, retry=redis.retry.Retry(redis.backoff.NoBackoff(), 0)
    )
    client.set("probe", "1")
    redis_control.pause()
    with pytest.raises(redis.exceptions.TimeoutError):  # its socket timeout, not a hang
        client.get("probe")
    redis_control.resume()
    assert client.get("probe") == b"1"


def test_killed_cache_restarts_empty_on_the_same_address(redis_control) -> None:
    client = redis.Redis.from_url(
        redis_control.url, socket_timeout=0.5, retry=redis.retry.Retry(redis.backoff.NoBackoff(), 0)
    )
    client.set("probe", "1")
    old_pid = redis_control.pid()
    redis_control.kill()
    with pytest.raises(redis.exceptions.ConnectionError):
        client.get("probe")
    assert redis_control.start() is True
    assert redis_control.pid() != old_pid
    assert client.get("probe") is None


def test_broker_is_a_separate_process_from_the_cache(redis_control, celery_app) -> None:
    broker = celery_app.connection_for_write()
    redis_control.kill()
    try:
        broker.ensure_connection(max_retries=1)
        channel = broker.default_channel
        channel.client.ping()
    finally:
        broker.release()
        redis_control.start()


# What the suite must never lean on: each would let a test pass without the real server.
FORBIDDEN = {
    "fakeredis": "a fake Redis",
    "mockredis": "a fake Redis",
    "django.db.backends.sqlite3": "SQLite instead of PostgreSQL",
    "sqlite://": "SQLite instead of PostgreSQL",
    "task_always_eager": "Celery tasks run inline instead of through the broker",
    "CELERY_TASK_ALWAYS_EAGER": "Celery tasks run inline instead of through the broker",
}
MOCKED_SERVICE = re.compile(
    r"""(?:mock\.patch|patch(?:\.object)?|monkeypatch\.setattr)\(\s*["']?[\w.]*"""
    r"""(?:redis|psycopg|django\.db\.(?:connection|backends)|kombu|celery)""",
)


def _project_files() -> list[Path]:
    files = [ROOT / "pyproject.toml"]
    for package in (
        "config",
        "sync",
        "catalog",
        "customers",
        "buyers",
        "sellers",
        "tests",
        "bench",
    ):
        files += (ROOT / package).rglob("*.py")
    return [path for path in files if path.resolve() != Path(__file__).resolve()]


def test_nothing_in_the_repo_fakes_or_mocks_the_servers() -> None:
    offences = []
    for path in _project_files():
        text = path.read_text(errors="replace")
        offences += [
            f"{path.relative_to(ROOT)}: {needle} ({why})"
            for needle, why in FORBIDDEN.items()
            if needle in text
        ]
        offences += [
            f"{path.relative_to(ROOT)}: mocks a server: {match.group(0)}"
            for match in MOCKED_SERVICE.finditer(text)
        ]
    assert offences == []

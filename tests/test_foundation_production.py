"""Production mode: a missing required variable stops startup with a clear message, and a fully
configured deployment passes Django's deployment checks without a warning."""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
import sys
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.db import connection

from config.env import REQUIRED_IN_PRODUCTION
from devtools.devservices import ROOT

# Variables that would let the development defaults leak into the production run.
DEVELOPMENT_ONLY = ("DEBUG", "SYNCOPS_SERVICES_PROFILE")


def _manage(*args: str, **variables: str) -> subprocess.CompletedProcess:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in REQUIRED_IN_PRODUCTION and k not in DEVELOPMENT_ONLY
    }
    env.update(DJANGO_ENV="production", ENV_FILE="", **variables)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _test_database_url() -> str:
    """The suite's own URL, naming the test database pytest-django created."""
    parts = urlsplit(os.environ["DATABASE_URL"])
    return urlunsplit(parts._replace(path="/" + connection.settings_dict["NAME"]))


def _production_environment() -> dict[str, str]:
    key = base64.b64encode(secrets.token_bytes(32)).decode()
    return {
        "SECRET_KEY": secrets.token_urlsafe(64),
        "ALLOWED_HOSTS": "ops.example.com",
        "DATABASE_URL": _test_database_url(),
        "REDIS_URL": os.environ["REDIS_URL"],
        "CELERY_BROKER_URL": os.environ["CELERY_BROKER_URL"],
        "SYNC_ENCRYPTION_KEYS": f"k1:{key}",
        "SYNC_HMAC_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        "METRICS_TOKEN": secrets.token_urlsafe(32),
    }


def test_production_without_configuration_names_every_missing_variable() -> None:
    result = _manage("check")

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    message = result.stderr.strip().splitlines()[-1]
    for name in REQUIRED_IN_PRODUCTION:
        assert name in message
    assert "started embedded" not in result.stderr  # production never starts dev servers


@pytest.mark.django_db
def test_production_names_only_the_variables_still_missing() -> None:
    present = _production_environment()
    missing = {"SYNC_HMAC_KEY", "METRICS_TOKEN"}
    for name in missing:
        present[name] = ""  # empty counts as unset

    result = _manage("check", **present)

    assert result.returncode != 0
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("django.core.exceptions.ImproperlyConfigured")
    named = {name for name in REQUIRED_IN_PRODUCTION if name in message}
    assert named == missing


@pytest.mark.django_db
def test_fully_configured_production_passes_the_deployment_checks() -> None:
    result = _manage(
        "check",
        "--deploy",
        "--database",
        "default",
        "--fail-level",
        "WARNING",
        **_production_environment(),
    )

    assert result.returncode == 0, result.stderr + result.stdout
    assert "System check identified no issues" in result.stdout


SERVICE_URLS = ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL")


def _development(*argv: str, **variables: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in SERVICE_URLS and k != "DJANGO_ENV"}
    env.update(ENV_FILE="", DJANGO_SETTINGS_MODULE="config.settings", **variables)
    return subprocess.run(
        [sys.executable, *argv],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_development_settings_without_urls_start_nothing_and_say_how() -> None:
    """Outside ./dev and the tests (manage.py run directly, an IDE, a type checker, a deploy
    that forgot DJANGO_ENV) the settings start no server: they name what is missing."""
    profile = f"test-{os.getpid()}-no-urls"
    result = _development("manage.py", "check", SYNCOPS_SERVICES_PROFILE=profile)

    assert result.returncode != 0
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("django.core.exceptions.ImproperlyConfigured")
    for name in SERVICE_URLS:
        assert name in message
    assert "use ./dev manage" in message
    assert "embedded" not in result.stderr.replace("for embedded development servers", "")
    assert not (ROOT / ".run" / profile).exists()


def test_development_settings_load_without_connecting() -> None:
    """Unreachable URLs are enough to load the settings: importing them connects nowhere."""
    result = _development(
        "-c",
        "import django; django.setup(); from django.conf import settings; print(settings.DEBUG)",
        DATABASE_URL="postgres://x@127.0.0.1:1/x",
        REDIS_URL="redis://127.0.0.1:1/0",
        CELERY_BROKER_URL="memory://",
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("HTTP_SLOW_REQUEST_MS", "0"),
        ("HTTP_SLOW_QUERY_MS", "-5"),
        ("HTTP_SLOW_KEEP", "0"),
        ("HTTP_SLOW_TTL", "-1"),
        ("SYNC_EVENTS_STATS_INTERVAL", "0"),
        ("SYNC_EVENTS_LATENCY_ALERT_MS", "-1"),
        ("SYNC_EVENTS_LAG_ALERT_SECONDS", "0"),
        ("SYNC_POPULAR_SAMPLE_RATE", "1.5"),
        ("CATALOG_CURRENCY_SYMBOL", " "),
    ],
)
def test_an_out_of_range_setting_stops_startup_naming_it(name: str, value: str) -> None:
    result = _development(
        "-c",
        "import django; django.setup()",
        DATABASE_URL="postgres://x@127.0.0.1:1/x",
        REDIS_URL="redis://127.0.0.1:1/0",
        CELERY_BROKER_URL="memory://",
        **{name: value},
    )

    assert result.returncode != 0
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("django.core.exceptions.ImproperlyConfigured")
    assert name in message
    assert value.strip() in message

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

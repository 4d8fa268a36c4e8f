"""The one ``environ.Env`` of the project, and the rules for what production must set."""

from __future__ import annotations

import os
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

ROOT = Path(__file__).resolve().parent.parent

env = environ.Env()
# Local overrides from a dotenv file (never committed): ENV_FILE names it, "" reads none.
# Variables already in the environment win over the file.
ENV_FILE = os.environ.get("ENV_FILE", str(ROOT / ".env"))
if ENV_FILE and Path(ENV_FILE).is_file():
    env.read_env(ENV_FILE)

# Variables a production deployment must set; development and tests fill them in.
REQUIRED_IN_PRODUCTION = (
    "SECRET_KEY",
    "ALLOWED_HOSTS",
    "DATABASE_URL",
    "REDIS_URL",
    "CELERY_BROKER_URL",
    "SYNC_ENCRYPTION_KEYS",
    "SYNC_HMAC_KEY",
    "METRICS_TOKEN",
)


def require_production_settings() -> None:
    missing = [name for name in REQUIRED_IN_PRODUCTION if not env.str(name, default="")]
    if missing:
        msg = (
            "DJANGO_ENV=production needs these environment variables, which are unset or empty: "
            + ", ".join(missing)
            + ". See README.md, 'Configuration'."
        )
        raise ImproperlyConfigured(msg)

"""Keys come only from the environment and are checked at startup."""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.env import ROOT
from sync.cache.keyring import development_keys, parse_encryption_keys, parse_hmac_key

# A fixed key: it is part of the parametrized test ids, which every xdist worker must collect alike.
GOOD = base64.b64encode(bytes(range(32))).decode()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "is empty"),
        ("nokey", "entry 1 must look like id:base64key"),
        (f"a:{GOOD},bad id:{GOOD}", "entry 2 must look like"),
        (f"a:{GOOD},a:{GOOD}", "names key id 'a' twice"),
        ("a:not base64!", "key 'a' is not valid base64"),
        (f"a:{base64.b64encode(b'short').decode()}", "has 5 bytes; AES-256 needs 32"),
    ],
)
def test_malformed_encryption_keys_are_named(value, message) -> None:
    with pytest.raises(ImproperlyConfigured, match=message):
        parse_encryption_keys(value)


def test_hmac_key_checks() -> None:
    assert len(parse_hmac_key(GOOD)) == 32
    with pytest.raises(ImproperlyConfigured, match="is empty"):
        parse_hmac_key(" ")
    with pytest.raises(ImproperlyConfigured, match="at least 32"):
        parse_hmac_key(base64.b64encode(b"x" * 8).decode())


def test_development_keys_are_generated_once_and_kept(tmp_path) -> None:
    first = development_keys(tmp_path / "run")
    assert first == development_keys(tmp_path / "run")
    assert oct((tmp_path / "run" / "secrets.env").stat().st_mode)[-3:] == "600"
    parse_encryption_keys(first["SYNC_ENCRYPTION_KEYS"])


def test_production_refuses_to_start_with_a_malformed_key() -> None:
    env = dict(
        os.environ,
        DJANGO_ENV="production",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="example.com",
        DATABASE_URL="postgres://u@127.0.0.1:1/x",
        REDIS_URL="redis://127.0.0.1:1/0",
        CELERY_BROKER_URL="redis://127.0.0.1:1/1",
        METRICS_TOKEN="t",
        SYNC_ENCRYPTION_KEYS="k1:tooshort",
        SYNC_HMAC_KEY=GOOD,
    )
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": "config.settings"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "SYNC_ENCRYPTION_KEYS key 'k1' has 6 bytes; AES-256 needs 32" in result.stderr

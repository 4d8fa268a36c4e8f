"""Keys for Tier 2/3 (DESIGN I5), only from the environment.

``SYNC_ENCRYPTION_KEYS`` is ``id:base64key[,id:base64key…]``: 32-byte AES-256 keys; the first
encrypts, every one decrypts, so a new key is put first and the old ones stay until
``manage.py sync_rotate_keys`` has re-encrypted the cache. ``SYNC_HMAC_KEY`` is one base64
key of at least 32 bytes for blind indexes. A missing or malformed value is a startup error in
production; in development the project generates its own keys once per run directory
(``.run/<profile>/secrets.env``) and says so.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

KEY_ID = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
AES_KEY_BYTES = 32
HMAC_MIN_BYTES = 32


@dataclass(frozen=True)
class Keyring:
    keys: dict[str, bytes]  # insertion order: the first encrypts
    hmac_key: bytes

    @property
    def current_id(self) -> str:
        return next(iter(self.keys))


def _b64(value: str, what: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as e:
        msg = f"{what} is not valid base64"
        raise ImproperlyConfigured(msg) from e


def parse_encryption_keys(text: str) -> dict[str, bytes]:
    if not text.strip():
        msg = "SYNC_ENCRYPTION_KEYS is empty: set id:base64key[,id:base64key…] (32-byte keys)"
        raise ImproperlyConfigured(msg)
    keys: dict[str, bytes] = {}
    for position, item in enumerate(text.split(","), start=1):
        key_id, sep, encoded = item.strip().partition(":")
        if not sep or not KEY_ID.match(key_id):
            msg = (
                f"SYNC_ENCRYPTION_KEYS entry {position} must look like id:base64key with an "
                "id of letters, digits, '_', '-' or '.'"
            )
            raise ImproperlyConfigured(msg)
        if key_id in keys:
            msg = f"SYNC_ENCRYPTION_KEYS names key id {key_id!r} twice"
            raise ImproperlyConfigured(msg)
        key = _b64(encoded, f"SYNC_ENCRYPTION_KEYS key {key_id!r}")
        if len(key) != AES_KEY_BYTES:
            msg = (
                f"SYNC_ENCRYPTION_KEYS key {key_id!r} has {len(key)} bytes; AES-256 needs "
                f"{AES_KEY_BYTES}"
            )
            raise ImproperlyConfigured(msg)
        keys[key_id] = key
    return keys


def parse_hmac_key(text: str) -> bytes:
    if not text.strip():
        msg = "SYNC_HMAC_KEY is empty: set a base64 key of at least 32 bytes"
        raise ImproperlyConfigured(msg)
    key = _b64(text.strip(), "SYNC_HMAC_KEY")
    if len(key) < HMAC_MIN_BYTES:
        msg = f"SYNC_HMAC_KEY has {len(key)} bytes; use at least {HMAC_MIN_BYTES}"
        raise ImproperlyConfigured(msg)
    return key


def parse_keyring(encryption_keys: str, hmac_key: str) -> Keyring:
    return Keyring(parse_encryption_keys(encryption_keys), parse_hmac_key(hmac_key))


def development_keys(run_dir: Path) -> dict[str, str]:
    """Keys for a development/demo/test run directory: read, or generated once and kept."""
    path = run_dir / "secrets.env"
    if path.exists():
        pairs = (line.partition("=") for line in path.read_text().splitlines() if "=" in line)
        return {name: value for name, _sep, value in pairs}
    run_dir.mkdir(parents=True, exist_ok=True)
    found = {
        "SYNC_ENCRYPTION_KEYS": "dev1:" + base64.b64encode(secrets.token_bytes(32)).decode(),
        "SYNC_HMAC_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
    }
    path.write_text("".join(f"{name}={value}\n" for name, value in found.items()))
    path.chmod(0o600)
    print(  # noqa: T201
        f"generated development encryption and HMAC keys in {path}",
        file=sys.stderr,
    )
    return found

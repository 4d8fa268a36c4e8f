"""Tier 2/3 protection of cached payloads (DESIGN I5).

* Tier 2: the payload is AES-256-GCM encrypted with a random 96-bit nonce; the associated data
  binds it to its cache key and version, so a ciphertext copied to another key, or replayed
  at another version, fails to decrypt. The key id is stored beside it (hash field ``k``).
* Tier 3: PII fields never enter the payload (they are not in the declaration's ``fields``);
  equality look-ups go through keyed HMAC-SHA256 blind indexes of normalised values
  (``BlindIndexField``); the rest is encrypted as Tier 2.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import re
from collections.abc import Sequence
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.db import models

from sync.cache.exceptions import UndecodableEntryError
from sync.cache.keyring import Keyring, parse_keyring

NONCE_BYTES = 12


class TamperedEntryError(UndecodableEntryError):
    """A ciphertext that does not authenticate: tampered, moved, replayed, or unknown key."""


@functools.lru_cache(maxsize=4)
def _keyring(encryption_keys: str, hmac_key: str) -> Keyring:
    return parse_keyring(encryption_keys, hmac_key)


def keyring() -> Keyring:
    return _keyring(settings.SYNC_ENCRYPTION_KEYS, settings.SYNC_HMAC_KEY)


def _aad(key: str, version: int) -> bytes:
    return f"{key}\x00{version}".encode()


def encrypt(plaintext: bytes, *, key: str, version: int) -> tuple[bytes, str]:
    ring = keyring()
    key_id = ring.current_id
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(ring.keys[key_id]).encrypt(nonce, plaintext, _aad(key, version)), key_id


def decrypt(sealed: bytes, *, key: str, version: int, key_id: str) -> bytes:
    secret = keyring().keys.get(key_id)
    if secret is None:
        msg = f"{key}: encrypted under key id {key_id!r}, which is not configured"
        raise TamperedEntryError(msg)
    try:
        return AESGCM(secret).decrypt(
            sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], _aad(key, version)
        )
    except (InvalidTag, ValueError) as e:
        msg = f"{key}: ciphertext does not authenticate at version {version}"
        raise TamperedEntryError(msg) from e


# --------------------------------------------------------------------------- blind indexes


def normalize_email(value: str) -> str:
    return value.strip().lower()


_NOT_DIGIT = re.compile(r"\D")


def normalize_phone(value: str) -> str:
    """E.164-like digits: "+1 (555) 010-0000", "001 555 010 0000" and "555.010.0000" agree."""
    text = value.strip()
    digits = _NOT_DIGIT.sub("", text)
    if text.startswith("+"):
        return "+" + digits
    if digits.startswith("00"):
        return "+" + digits[2:]
    country_code: str = settings.SYNC_PHONE_DEFAULT_COUNTRY_CODE
    return "+" + country_code + digits.lstrip("0")


NORMALIZERS = {"email": normalize_email, "phone": normalize_phone}


def blind_index(label: str, field: str, normalized: str) -> str:
    message = f"{label}\x00{field}\x00{normalized}".encode()
    return hmac.new(keyring().hmac_key, message, hashlib.sha256).hexdigest()


# Django's fields take no type arguments at run time (only django-stubs' do).
class BlindIndexField(models.CharField):  # type: ignore[type-arg]
    """HMAC-SHA256 of another field's normalised value, kept up to date on every save.

    Stored in PostgreSQL (so a look-up by e-mail or phone is an indexed equality query there
    too) and in the cached payload (so a look-up through Redis can verify its index entry).
    """

    def __init__(self, *args: Any, source: str = "", kind: str = "email", **kwargs: Any) -> None:
        self.source = source
        self.kind = kind
        self.normalizer = NORMALIZERS[kind]
        kwargs.setdefault("max_length", 64)
        kwargs.setdefault("editable", False)
        kwargs.setdefault("db_index", True)
        kwargs.setdefault("blank", True)
        super().__init__(*args, **kwargs)

    def deconstruct(self) -> tuple[str, str, Sequence[Any], dict[str, Any]]:
        name, path, args, kwargs = super().deconstruct()
        kwargs["source"] = self.source
        kwargs["kind"] = self.kind
        return name, path, args, kwargs

    def digest(self, model: type[models.Model], value: str | None) -> str:
        if not value:
            return ""
        return blind_index(model._meta.label_lower, self.source, self.normalizer(value))

    def pre_save(self, model_instance: models.Model, add: bool) -> str:
        value = self.digest(type(model_instance), getattr(model_instance, self.source))
        setattr(model_instance, self.attname, value)
        return value


def blind_index_fields(model: type[models.Model]) -> dict[str, BlindIndexField]:
    """The model's blind indexes by the name of the field they index."""
    return {f.source: f for f in model._meta.concrete_fields if isinstance(f, BlindIndexField)}

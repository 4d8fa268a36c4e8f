"""Payload encoding of a cached row.

A payload is the JSON list of the declared fields' values in declaration order; decoding goes
through each field's ``to_python`` so a cached instance holds the same types as one loaded from
PostgreSQL. Tier 2/3 payloads are encrypted by ``sync.cache.tiers`` (when declared).
"""

from __future__ import annotations

import datetime
import decimal
import json
import uuid
from _json import encode_basestring_ascii, make_encoder
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError

from sync.cache.declaration import Tier
from sync.cache.exceptions import UndecodableEntryError
from sync.cache.tiers import decrypt, encrypt

if TYPE_CHECKING:
    from sync.cache.declaration import SyncSpec


def _default(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    msg = f"cannot cache a value of type {type(value).__name__}"
    raise TypeError(msg)


# What ``json.JSONEncoder(default=_default, separators=(",", ":")).encode`` runs: its C
# encoder, made once here (JSONEncoder makes one per call: half the cost of encoding a row
# of warm or replay) and without the circular-reference check (a value read from PostgreSQL
# has no cycle), so the same text.
_ENCODER = make_encoder(None, _default, encode_basestring_ascii, None, ":", ",", False, False, True)


def dumps(value: Any) -> str:
    """The compact JSON of ``value`` (ASCII; Decimal, dates and UUIDs as strings)."""
    return "".join(_ENCODER(value, 0))


def encode_values(values: list[Any] | tuple[Any, ...]) -> bytes:
    return dumps(values).encode()


_DECODER = json.JSONDecoder()


def decode_values(spec: SyncSpec, payload: bytes) -> list[Any]:
    try:
        # NOTE: bytes decoded here, not by json.loads (which sniffs the encoding first), and
        # only the values whose type JSON changes converted: this runs on every cache hit.
        raw = _DECODER.decode(payload.decode())
        if type(raw) is not list or len(raw) != len(spec.to_python):
            msg = f"{len(spec.to_python)} values expected"
            raise ValueError(msg)
        for position, to_python in spec.converters:
            raw[position] = to_python(raw[position])
    except (ValueError, TypeError, ValidationError) as e:
        msg = f"{spec.label}: cached payload does not decode ({type(e).__name__})"
        raise UndecodableEntryError(msg) from e
    return raw


def seal(
    spec: SyncSpec, key: str, version: int, values: list[Any] | tuple[Any, ...]
) -> tuple[bytes, str]:
    """The stored form of a row's values, and the id of the key that protects it."""
    payload = encode_values(values)
    if spec.tier == Tier.PUBLIC:
        return payload, ""
    return encrypt(payload, key=key, version=version)


def unseal(
    spec: SyncSpec, key: str, version: int, payload: bytes, key_id: bytes | str
) -> list[Any]:
    if spec.tier != Tier.PUBLIC:
        key_id = key_id.decode() if isinstance(key_id, bytes) else key_id
        payload = decrypt(payload, key=key, version=version, key_id=key_id)
    return decode_values(spec, payload)

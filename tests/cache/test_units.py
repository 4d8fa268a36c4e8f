"""Small pure pieces of the engine: codec, declaration errors, redaction, labels."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import logging
import uuid

import pytest
from django.contrib.auth.models import Group

from catalog.models import Part
from sync.cache.codec import decode_values, encode_values, seal, unseal
from sync.cache.declaration import Tier, spec_for, synced
from sync.cache.exceptions import NotSyncedError, SyncError
from sync.models import SyncFence, SyncIntent
from sync.redaction import RedactPiiFilter, redact


def test_encode_handles_database_types_and_refuses_others() -> None:
    when = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    ident = uuid.UUID(int=1)
    payload = encode_values(
        [decimal.Decimal("1.10"), when, when.date(), when.time(), ident, b"\x01\x02", None]
    )
    assert payload == (
        b'["1.10","2026-01-02T03:04:05+00:00","2026-01-02","03:04:05",'
        b'"00000000-0000-0000-0000-000000000001","0102",null]'
    )
    with pytest.raises(TypeError, match="cannot cache a value of type object"):
        encode_values([object()])


def test_roundtrip_restores_field_types() -> None:
    spec = spec_for(Part)
    values = ["S", "name", decimal.Decimal("2.50"), True, "", {"a": 1}, [], None]
    assert decode_values(spec, encode_values(values)) == values


def test_sensitive_tier_seals_and_unseals_with_key_and_version_bound() -> None:
    spec = dataclasses.replace(spec_for(Part), tier=Tier.SENSITIVE)
    values = ["S", "name", decimal.Decimal("2.50"), True, "", {"a": 1}, [], None]
    sealed, key_id = seal(spec, "k", 7, values)
    assert b"name" not in sealed and key_id
    assert unseal(spec, "k", 7, sealed, key_id.encode()) == values
    with pytest.raises(SyncError, match="does not authenticate"):
        unseal(spec, "k", 8, sealed, key_id)


def test_declaring_a_model_that_cannot_be_synced_is_a_clear_error() -> None:
    with pytest.raises(TypeError, match=r"must subclass sync\.models\.SyncedModel"):
        synced(fields=["name"])(Group)
    with pytest.raises(NotSyncedError, match=r"auth\.user is not a synced model"):
        spec_for("auth.user")


def test_redaction_of_messages_and_log_records() -> None:
    text = "mail jane.doe@example.com phone +44 20 7946 0958 card 4111 1111 1111 1111"
    assert redact(text) == "mail [email] phone [phone] card [card]"
    assert redact("IBAN DE89 3704 0044 0532 0130 00 ok") == "IBAN [iban] ok"
    # values of fields declared PII, known to the caller; single letters are left alone
    assert redact("row of Jane Doe in Leeds (a)", values=["Jane Doe", "Leeds", "a", ""]) == (
        "row of [pii] in [pii] (a)"
    )
    assert redact("DETAIL:  Key (email)=(x@y.z) already exists.") == (
        "DETAIL:  Key (email)=([value]) already exists."
    )
    record = logging.LogRecord(
        "sync", logging.INFO, __file__, 1, "user %s failed", ("jane@example.com",), None
    )
    assert RedactPiiFilter().filter(record) is True
    assert record.getMessage() == "user [email] failed"
    clean = logging.LogRecord("sync", logging.INFO, __file__, 1, "nothing %s", ("here",), None)
    RedactPiiFilter().filter(clean)
    assert clean.args == ("here",)


def test_labels_of_queue_rows() -> None:
    intent = SyncIntent(model="catalog.part", object_pk="7", version=9, status="pending")
    assert str(intent) == "catalog.part:7 v9 (pending)"
    assert str(SyncFence(model="catalog.part", epoch=3)) == "catalog.part epoch 3"


def test_a_json_field_with_a_decoder_of_its_own_keeps_it_on_the_fast_read_path() -> None:
    """Replay, warm and the write-through convert jsonb with json's decoder directly, except
    for a field with a decoder (or conversion) of its own: that one goes through the field."""
    import json

    from django.db import connection, models

    from sync.cache import outbox

    class DecimalDecoder(json.JSONDecoder):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, parse_float=decimal.Decimal, **kwargs)

    own = models.JSONField(decoder=DecimalDecoder)
    plain = models.JSONField()
    assert outbox._plain_json(plain) and not outbox._plain_json(own)

    convert = outbox._from_db_value(own.from_db_value, connection)

    assert convert('{"price": 1.10}') == {"price": decimal.Decimal("1.10")}

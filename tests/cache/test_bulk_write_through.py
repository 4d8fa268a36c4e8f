"""Write-through of states a bulk statement already has (sync.cache.writer.write_on_commit,
BackgroundWriter) and the set-based enqueue (outbox.enqueue_sql): what ingestion uses."""

from __future__ import annotations

import logging

import pytest
from django.db import transaction

from catalog.models import Part
from sync.cache import outbox
from sync.cache.declaration import spec_for
from sync.cache.writer import BackgroundWriter, settle, take_settled, write_on_commit
from tests.cache.conftest import cached, cached_price
from tests.factories import make_part

pytestmark = pytest.mark.django_db(transaction=True)
LABEL = "catalog.part"


def _state(part: Part) -> outbox.RowState:
    (state,) = outbox.row_states(spec_for(LABEL), [str(part.pk)], {})
    return state


def test_states_are_written_at_commit_never_before_and_handed_back_to_settle(redis_raw) -> None:
    part = make_part(price=5)
    settle()
    redis_raw.delete(*redis_raw.keys("*"))
    through = BackgroundWriter()
    with transaction.atomic():
        Part.objects.filter(pk=part.pk).update(price=6)  # a bulk write: the trigger's intent
        write_on_commit([_state(part)], via=through)
        assert cached(redis_raw, LABEL, part.pk) == {}  # nothing before commit (I4)
    done = through.close()
    assert [s.pk for s in done] == [str(part.pk)]
    assert cached_price(redis_raw, part.pk) == 6
    assert through.close() == []  # closing twice is harmless


def test_outside_a_transaction_states_are_written_at_once(redis_raw) -> None:
    part = make_part(price=8)
    settle()
    redis_raw.delete(*redis_raw.keys("*"))
    write_on_commit([_state(part)])
    assert cached_price(redis_raw, part.pk) == 8
    assert [s.pk for s in take_settled()] == [str(part.pk)]  # its intent, deleted later
    write_on_commit([])  # nothing to write


def test_an_unexpected_error_is_logged_never_raised(caplog) -> None:
    caplog.set_level(logging.ERROR)
    write_on_commit([outbox.RowState("nosuch.model", "1", 1, ("x",))])
    assert "write-through failed unexpectedly" in caplog.text


def test_the_set_based_enqueue_takes_model_labels_only() -> None:
    assert "'catalog.part'" in outbox.enqueue_sql(LABEL, "up", "id", "v")
    with pytest.raises(ValueError, match="catalog"):
        outbox.enqueue_sql("catalog.part'; DROP TABLE x; --", "up", "id", "v")

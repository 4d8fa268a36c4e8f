"""Every change event says when its change was committed (``committed_at``, epoch ms): the
write-through's on_commit moment, or, when replay delivers it after an outage, the intent's
own time, so the delay shows; entries written before the field existed still decode."""

from __future__ import annotations

import pytest
from django.db import transaction

from catalog import services
from catalog.events import decode
from catalog.models import Part, StockLevel
from sync.cache import events, outbox
from sync.cache.declaration import spec_for
from sync.cache.replay import replay_pending
from sync.cache.writer import BackgroundWriter, write_on_commit
from sync.models import SyncIntent

pytestmark = pytest.mark.django_db(transaction=True)
STREAM = events.stream_key("catalog")


def _last(redis_raw, part_id: int) -> dict:
    found = [decode(fields) for _id, fields in redis_raw.xrange(STREAM)]
    return [e for e in found if e["part"] == str(part_id)][-1]


def test_a_write_through_event_carries_its_commit_moment(make_part, redis_raw) -> None:
    part = make_part(quantity=5, reserved=0)
    stock = StockLevel.objects.get(pk=part.pk)
    before = events.now_ms()
    services.stock_update(part_id=part.pk, expected_version=stock.version, quantity=4, reserved=0)
    after = events.now_ms()  # the on_commit hook has run when the service returns
    event = _last(redis_raw, part.pk)
    assert event["data"]["quantity"] == 4
    assert before <= int(event["committed_at"]) <= after


def test_a_bulk_write_on_commit_is_stamped_when_the_transaction_commits(
    make_part, redis_raw
) -> None:
    part = make_part()
    spec = spec_for(Part)
    writer = BackgroundWriter()
    with transaction.atomic():
        Part.objects.filter(pk=part.pk).update(name="Bulk renamed")
        states = outbox.row_states(spec, [str(part.pk)], {})
        write_on_commit(states, via=writer)
        before = events.now_ms()  # the commit comes after this
    after = events.now_ms()
    writer.close()
    event = _last(redis_raw, part.pk)
    assert event["data"]["name"] == "Bulk renamed"
    assert before <= int(event["committed_at"]) <= after


def test_a_replayed_event_carries_the_intents_time_not_the_replays(make_part, redis_raw) -> None:
    part = make_part()
    stock = StockLevel.objects.get(pk=part.pk)
    redis_raw.delete(STREAM)
    redis_raw.set(STREAM, "not a stream")  # the append fails (WRONGTYPE): a real Redis error
    before = events.now_ms()
    services.stock_update(part_id=part.pk, expected_version=stock.version, quantity=3, reserved=0)
    intent = SyncIntent.objects.get(model="catalog.stocklevel", object_pk=str(part.pk))
    committed = int(intent.created_at.timestamp() * 1000)
    redis_raw.delete(STREAM)
    replay_started = events.now_ms()
    replay_pending(include_not_due=True)
    event = _last(redis_raw, part.pk)
    assert event["data"]["quantity"] == 3
    assert int(event["committed_at"]) == committed  # the change's time …
    assert before - 1 <= committed <= replay_started  # … not the replay's (ms rounding: -1)


def test_an_entry_without_committed_at_still_decodes(redis_raw) -> None:
    """Entries appended before the field existed: no commit time, nothing breaks."""
    redis_raw.xadd(STREAM, {"type": "stock", "part": "7", "version": "1", "data": '{"id": 7}'})
    (event,) = [decode(fields) for _id, fields in redis_raw.xrange(STREAM)]
    assert "committed_at" not in event
    assert event["data"] == {"id": 7}

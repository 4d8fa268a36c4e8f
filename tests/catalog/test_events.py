"""Change events ride on the outbox: appended on commit, appended by replay when the
write-through could not, never twice for one version."""

from __future__ import annotations

import pytest

from catalog import services
from catalog.events import decode
from catalog.models import Part, StockLevel
from sync.cache import events, outbox, store
from sync.cache.declaration import spec_for
from sync.cache.keys import marker_key
from sync.cache.replay import replay_pending
from sync.cache.writer import write_states
from sync.models import SyncIntent

pytestmark = pytest.mark.django_db(transaction=True)
STREAM = events.stream_key("catalog")


def _events(redis_raw, part_id: int | None = None) -> list[dict]:
    found = [decode(fields) for _id, fields in redis_raw.xrange(STREAM)]
    return [e for e in found if part_id is None or e["part"] == str(part_id)]


def test_each_committed_change_appends_its_event(make_part, redis_raw) -> None:
    part = make_part(quantity=5, reserved=1)
    created = _events(redis_raw, part.pk)
    assert [e["type"] for e in created] == ["part", "stock"]
    assert created[0]["data"]["sku"] == part.sku
    assert created[1]["data"] == {
        "id": part.pk,
        "quantity": 5,
        "reserved": 1,
        "available_stock": 4,
        "is_in_stock": True,
    }
    stock = StockLevel.objects.get(pk=part.pk)
    services.stock_update(part_id=part.pk, expected_version=stock.version, quantity=1, reserved=1)
    last = _events(redis_raw, part.pk)[-1]
    assert (last["type"], last["data"]["is_in_stock"]) == ("stock", False)
    assert int(last["version"]) == StockLevel.objects.get(pk=part.pk).version
    services.part_soft_delete(part_id=part.pk, expected_version=part.version)
    assert _events(redis_raw, part.pk)[-1]["type"] == "part_deleted"


def test_writing_the_same_version_again_appends_nothing(make_part, redis_raw) -> None:
    part = make_part()
    before = redis_raw.xlen(STREAM)
    spec = spec_for(Part)
    states = outbox.row_states(spec, [str(part.pk)], {})
    assert write_states(states)  # a replay of what the write-through already did
    assert events.append(states) == 0
    assert redis_raw.xlen(STREAM) == before


def test_a_failed_append_leaves_the_intent_and_replay_appends_once(make_part, redis_raw) -> None:
    part = make_part()
    stock = StockLevel.objects.get(pk=part.pk)
    redis_raw.delete(STREAM)
    redis_raw.set(STREAM, "not a stream")  # XADD fails (WRONGTYPE): a real Redis error
    services.stock_update(part_id=part.pk, expected_version=stock.version, quantity=3, reserved=0)
    assert SyncIntent.objects.filter(model="catalog.stocklevel", object_pk=str(part.pk)).exists()
    redis_raw.delete(STREAM)
    replay_pending(include_not_due=True)
    replay_pending(include_not_due=True)
    appended = _events(redis_raw, part.pk)
    assert [(e["type"], e["data"]["quantity"]) for e in appended] == [("stock", 3)]


def test_a_flushed_script_cache_is_reloaded(make_part, redis_raw) -> None:
    part = make_part()
    redis_raw.script_flush()
    services.part_update_content(
        part_id=part.pk, expected_version=part.version, content={"name": "After flush"}
    )
    assert _events(redis_raw, part.pk)[-1]["data"]["name"] == "After flush"


def test_models_without_events_append_nothing(redis_raw) -> None:
    state = outbox.RowState("buyers.buyer", "1", 5, None)
    assert events.append([state]) == 0
    assert not redis_raw.exists(STREAM)


def test_a_deleted_stock_row_is_an_out_of_stock_event(make_part, redis_raw) -> None:
    part = make_part()
    StockLevel.objects.filter(pk=part.pk).delete()
    replay_pending(include_not_due=True)
    assert _events(redis_raw, part.pk)[-1]["data"]["is_in_stock"] is False


def test_many_events_in_grouped_script_calls_stay_once_per_version(
    make_part, redis_raw, monkeypatch
) -> None:
    """Events go to Redis several per script call (``store.grouped``): still each row's once
    per version, in order, never an older one, and counted."""
    monkeypatch.setattr(store, "MANY_MAX", 2)
    parts = [make_part(name=f"grouped {n}") for n in range(5)]
    spec = spec_for(Part)
    states = outbox.row_states(spec, [str(p.pk) for p in parts], {})
    redis_raw.delete(STREAM, events.last_key("catalog"))
    assert events.append(states) == 5
    assert events.append(states) == 0
    older = [state._replace(version=state.version - 1) for state in states]
    assert events.append(older[:3] + states[3:]) == 0
    appended = _events(redis_raw)
    assert [e["data"]["name"] for e in appended] == [f"grouped {n}" for n in range(5)]
    assert [int(e["version"]) for e in appended] == [s.version for s in states]


def test_grouped_events_after_a_data_loss_append_nothing(make_part, redis_raw, monkeypatch) -> None:
    """Events that ride in the write's round trip are guarded by the data-loss marker, each
    group of them as each single one was: after a loss no older state is appended."""
    monkeypatch.setattr(store, "MANY_MAX", 2)
    parts = [make_part() for _ in range(3)]
    spec = spec_for(Part)
    states = outbox.row_states(spec, [str(p.pk) for p in parts], {})
    redis_raw.delete(STREAM, events.last_key("catalog"))
    marks = store.capture()
    redis_raw.set(marker_key(), "another token")  # Redis lost its data after the read
    writes = [w for state in states for w in state.to_writes(spec)]
    store.write_many(writes, marks=marks, then=events.calls(states))
    assert marks.lost
    assert not redis_raw.exists(STREAM)

"""The catalog's change events: what each part/stock write puts on the ``catalog`` stream.

Fields (all strings, as stream entries hold): ``type`` (``part``, ``part_deleted`` or
``stock``), ``part`` (the part id), ``version`` (the row version) and ``data`` (JSON: the public
content, or the stock with its derived ``available_stock`` and ``is_in_stock``).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from sync.cache.codec import encode_values

if TYPE_CHECKING:
    from sync.cache.declaration import SyncSpec
    from sync.cache.outbox import RowState

STREAM = "catalog"
PUBLIC_PART_FIELDS = ("sku", "name", "price", "description", "specifications", "images")


def _event(kind: str, state: RowState, data: dict) -> dict[str, str]:
    # encode_values: the cache's own JSON (Decimal and dates as strings)
    return {
        "type": kind,
        "part": state.pk,
        "version": str(state.version),
        "data": encode_values([data]).decode()[1:-1],
    }


def part_event(spec: SyncSpec, state: RowState) -> dict[str, str]:
    if state.values is None or not spec.is_live(state.values):
        return _event("part_deleted", state, {"id": int(state.pk)})
    values = dict(zip(spec.fields, state.values, strict=True))
    return _event(
        "part", state, {"id": int(state.pk), **{name: values[name] for name in PUBLIC_PART_FIELDS}}
    )


def stock_event(spec: SyncSpec, state: RowState) -> dict[str, str]:
    if state.values is None:
        return _event(
            "stock",
            state,
            {
                "id": int(state.pk),
                "quantity": 0,
                "reserved": 0,
                "available_stock": 0,
                "is_in_stock": False,
            },
        )
    values = dict(zip(spec.fields, state.values, strict=True))
    available = values["quantity"] - values["reserved"]
    return _event(
        "stock",
        state,
        {
            "id": int(state.pk),
            "quantity": values["quantity"],
            "reserved": values["reserved"],
            "available_stock": available,
            "is_in_stock": available > 0,
        },
    )


def decode(fields: dict[bytes, bytes]) -> dict:
    """A stream entry back into the event (``data`` parsed)."""
    event = {k.decode(): v.decode() for k, v in fields.items()}
    event["data"] = json.loads(event["data"])
    return event


def register() -> None:
    from sync.cache import events

    events.register("catalog.part", stream=STREAM, build=part_event)
    events.register("catalog.stocklevel", stream=STREAM, build=stock_event)

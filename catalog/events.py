"""The catalog's change events: what each part/stock write puts on the ``catalog`` stream.

Fields (all strings, as stream entries hold): ``type`` (``part``, ``part_deleted`` or
``stock``), ``part`` (the part id), ``version`` (the row version) and ``data`` (JSON: the public
content, or the stock with its derived ``available_stock`` and ``is_in_stock``).
"""

from __future__ import annotations

import functools
import json
import operator
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sync.cache.codec import dumps

if TYPE_CHECKING:
    from sync.cache.declaration import SyncSpec
    from sync.cache.outbox import RowState

STREAM = "catalog"
PUBLIC_PART_FIELDS = ("sku", "name", "price", "description", "specifications", "images")
_PART_DATA = ("id", *PUBLIC_PART_FIELDS)  # a part event's data, in order


@functools.cache
def _getter(fields: tuple[str, ...], names: tuple[str, ...]) -> Callable[[Any], tuple[Any, ...]]:
    """The values of ``names`` (two or more) out of a row's values in ``fields`` order."""
    return operator.itemgetter(*[fields.index(name) for name in names])


def _event(kind: str, state: RowState, data: dict) -> dict[str, str]:
    # dumps: the cache's own JSON (Decimal and dates as strings)
    return {"type": kind, "part": state.pk, "version": str(state.version), "data": dumps(data)}


def part_event(spec: SyncSpec, state: RowState) -> dict[str, str]:
    if state.values is None or not spec.is_live(state.values):
        return _event("part_deleted", state, {"id": int(state.pk)})
    public = _getter(spec.fields, PUBLIC_PART_FIELDS)(state.values)
    return _event("part", state, dict(zip(_PART_DATA, (int(state.pk), *public), strict=True)))


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
    quantity, reserved = _getter(spec.fields, ("quantity", "reserved"))(state.values)
    available = quantity - reserved
    return _event(
        "stock",
        state,
        {
            "id": int(state.pk),
            "quantity": quantity,
            "reserved": reserved,
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

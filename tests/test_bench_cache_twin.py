"""The cache bench's plain twin (bench/fixtures.py) has every column of ``catalog.Part``, of
the same types: a synced save is compared with a plain save of the same row, not of a
narrower one (a twin without the JSON columns made the plain save ~7% cheaper)."""

from __future__ import annotations

from bench.fixtures import plain_model
from catalog.models import Part


def _columns(model) -> dict[str, str]:
    return {f.column: f.get_internal_type() for f in model._meta.concrete_fields}


def test_the_plain_twin_has_every_column_of_part() -> None:
    assert _columns(plain_model()) == _columns(Part)


def test_the_plain_twin_has_parts_own_indexes() -> None:
    def shape(index) -> tuple:
        return (tuple(index.fields), str(index.condition))

    assert [shape(i) for i in plain_model()._meta.indexes] == [shape(i) for i in Part._meta.indexes]

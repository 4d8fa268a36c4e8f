"""A synced or ingested field's column: the engine writes SQL with it, so a field without a
column of its own is refused by name, never written into SQL as ``None``."""

from __future__ import annotations

import pytest
from django.db import models

from buyers.models import Buyer
from catalog.models import Part
from sync.cache.declaration import column, concrete_field, field_column
from sync.ingest.exceptions import SourceConfigError
from sync.ingest.left_sheet import _soft_delete_field_of


def test_a_field_and_a_primary_key_name_their_columns() -> None:
    assert column(Part, "sku") == "sku"
    assert column(Part) == Part._meta.pk.column


def test_a_reverse_relation_is_not_a_column() -> None:
    with pytest.raises(TypeError, match=r"catalog\.part\.content_versions is not a column"):
        concrete_field(Part, "content_versions")


def test_a_relation_through_other_columns_has_none_of_its_own() -> None:
    through = models.ForeignObject(
        Part, on_delete=models.CASCADE, from_fields=["id"], to_fields=["id"]
    )
    through.set_attributes_from_name("alias")
    through.model = Part
    with pytest.raises(TypeError, match=r"catalog\.part\.alias has no column of its own"):
        field_column(through)


def test_soft_deleting_rows_that_left_the_sheet_needs_a_soft_delete_field() -> None:
    assert _soft_delete_field_of(Part) == "deleted_at"
    with pytest.raises(SourceConfigError, match=r"buyers\.buyer has no soft-delete field"):
        _soft_delete_field_of(Buyer)

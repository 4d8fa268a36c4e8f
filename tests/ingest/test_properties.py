"""Property tests (hypothesis): whatever a cell holds — any unicode, very long, empty — a row
is never a crash, never lost and never truncated: it is stored exactly or reported."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from buyers.models import Buyer
from devtools.sheets import BUYER_HEADERS, SELLER_HEADERS
from sync.ingest import validation
from sync.ingest.pipeline import run_ingest
from sync.ingest.schema import column_limits
from sync.ingest.source_definitions import get_source
from sync.ingest.validation import RowValidator
from sync.models import ErrorLog, RecordLog
from tests.ingest.conftest import set_source_key

pytestmark = pytest.mark.django_db
CATEGORIES = {c.value for c in ErrorLog.Category}
TEXT_AT = {
    1: "name",
    2: "email",
    3: "phone",
    4: "address",
    5: "desired_area",
    6: "property_type",
    8: "status",
    9: "inquiry_source",
    11: "notes",
}

cell = st.one_of(
    st.text(max_size=80),
    st.text(min_size=200, max_size=2000),
    st.just(""),
    st.sampled_from(
        [
            "  ",
            "12,000,000",
            "2024/02/30",
            "1e400",
            "NaN",
            "-0",
            "0.005",
            "2024-02-29",
            "\u202e",
            "😀" * 60,
        ]
    ),
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(cells=st.lists(cell, min_size=0, max_size=14), key=st.text(max_size=12))
def test_validation_never_raises_and_keeps_text_exact(cells, key) -> None:
    validator = RowValidator(
        get_source("buyers"), column_limits(get_source("buyers")), BUYER_HEADERS
    )
    row, issues = validator.validate(2, [key, *cells])
    if row is None:
        assert issues
        assert {issue.category for issue in issues} <= CATEGORIES
        return
    assert not issues
    full = [key, *cells] + [""] * 14
    for position in TEXT_AT:
        assert row.values[position] == full[position]  # exactly the cell, never trimmed


class _Cells(list):
    """A row of no kind ``validate`` knows: read cell by cell, as before its common path."""


number_or_date = st.sampled_from(
    [
        *("007", "000", "0", "12345678901234567890", "123456789012", "1234567890"),
        *("\x00", "1\x00", "2024-02-29", " 5", "5 ", "1_000", "١٢", "²"),
        *("B-00001", " B-00002 ", "B-1"),
    ]
)


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    cells=st.lists(st.one_of(cell, number_or_date), min_size=0, max_size=14),
    key=st.one_of(st.text(max_size=12), number_or_date),
    source=st.sampled_from(["buyers", "sellers"]),
)
def test_the_common_rows_path_finds_what_the_cell_by_cell_path_finds(cells, key, source) -> None:
    """``validate``'s path for a plain row with every column and no NUL (most rows) gives the
    very values and issues, in the same order, that reading it cell by cell gives."""
    headers = BUYER_HEADERS if source == "buyers" else SELLER_HEADERS
    validator = RowValidator(get_source(source), column_limits(get_source(source)), headers)
    row = [key, *cells]
    assert repr(validator.validate(2, row)) == repr(validator.validate(2, _Cells(row)))


def _read(spec, value: str):
    try:
        return repr(validation._decimal(spec, value))
    except validation._Invalid as e:
        return (e.issue.code, e.issue.reason, e.issue.limit)


@settings(max_examples=300, deadline=None)
@given(digits=st.text("0123456789", min_size=1, max_size=24))
def test_plain_digits_read_as_the_general_number_path_reads_them(digits) -> None:
    """A cell of plain digits (read without cleaning) gives the number, or the issue, that
    the same digits with a space around them (cleaned first) give."""
    config = get_source("buyers")
    validator = RowValidator(config, column_limits(config), BUYER_HEADERS)
    for spec in validator.parent:
        if spec.array_type == "numeric":
            assert _read(spec, digits) == _read(spec, f" {digits} ")


safe_text = st.text(
    st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=400
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=st.lists(st.tuples(safe_text, safe_text, safe_text), min_size=1, max_size=12))
def test_a_run_stores_every_row_exactly_or_reports_it(rows, tmp_path_factory, settings) -> None:
    Buyer.objects.all().delete()
    if "optional_columns" not in Path(settings.SYNC_INGEST_SOURCES_FILE).read_text():
        # The sheet has four of the mapped columns: the others are declared optional.
        set_source_key(
            settings,
            "buyers",
            "optional_columns = "
            + json.dumps(
                [h for h in BUYER_HEADERS if h not in ("Buyer Number", "Name", "Address", "Notes")]
            ),
        )
    path = tmp_path_factory.mktemp("sheet") / "buyers.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Buyer Number", "Name", "Address", "Notes"])
        for n, (name, address, notes) in enumerate(rows, start=1):
            writer.writerow([f"B-{n:05d}", name, address, notes])
    run = run_ingest("buyers", file=str(path))
    stored = {b.buyer_number: b for b in Buyer.objects.all()}
    failed = set(ErrorLog.objects.filter(run_id=run.pk).values_list("row_number", flat=True))
    assert run.rows_done == len(rows) == RecordLog.objects.filter(run_id=run.pk).count()
    for n, (name, address, notes) in enumerate(rows, start=1):
        buyer = stored.get(f"B-{n:05d}")
        if buyer is None:
            assert n + 1 in failed  # reported, with its row number
            assert not name.strip()  # the only reason here: the required name is empty
            continue
        assert (buyer.name, buyer.address, buyer.notes) == (name, address, notes)

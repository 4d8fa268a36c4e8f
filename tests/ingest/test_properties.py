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
from devtools.sheets import BUYER_HEADERS
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

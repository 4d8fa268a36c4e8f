"""Silent changes made impossible (nothing a file holds is dropped unsaid), with real files:
a mapped column missing from the sheet, a key on rows far apart, a sheet changed during a run,
the missing-rows commands on sheets they cannot read, and the sources file's validation."""

from __future__ import annotations

import csv
import re
from io import StringIO
from pathlib import Path

import openpyxl
import pytest
from django.core.management import CommandError, call_command
from django.core.management.base import SystemCheckError

from buyers.models import Buyer
from devtools.sheets import BUYER_HEADERS, buyer_rows
from sync.ingest.exceptions import SourceConfigError
from sync.ingest.pipeline import keys, run_ingest
from sync.ingest.source_definitions import get_source
from sync.models import ErrorLog, RecordLog
from tests.ingest.conftest import add_source, alter_columns, set_source_key
from tests.ingest.test_sources import SHEET_SOURCE

pytestmark = pytest.mark.django_db


def _without(headers: list[str], rows: list[list[str]], drop: set[str]):
    keep = [i for i, h in enumerate(headers) if h not in drop]
    return [headers[i] for i in keep], [[row[i] for i in keep] for row in rows]


def _snapshot() -> dict[str, tuple]:
    return {b.buyer_number: (b.email, b.budget, b.name, b.version) for b in Buyer.objects.all()}


# --------------------------------------------------------------------------- missing columns


def test_a_missing_required_column_refuses_the_run_and_writes_nothing(buyers_sheet) -> None:
    rows = list(buyer_rows(30, 0))
    buyers_sheet(rows)
    assert run_ingest("buyers").status == "succeeded"
    before = _snapshot()
    rows[0][1] = "a new name"  # a real change beside the missing column: not written either
    headers, cut = _without(BUYER_HEADERS, rows, {"Email", "Phone"})
    buyers_sheet(cut, headers=headers)
    for dry_run in (True, False):
        run = run_ingest("buyers", dry_run=dry_run)
        assert run.status == "failed"
        assert "no column 'Email' (-> email), 'Phone' (-> phone)" in run.message
        assert "optional_columns" in run.message
        errors = set(
            ErrorLog.objects.filter(run_id=run.pk).values_list("category", "code", "column")
        )
        assert errors == {
            ("source", "missing_column", "Email"),
            ("source", "missing_column", "Phone"),
        }
        assert run.errors_by_category == {"source": 2}
        assert not RecordLog.objects.filter(run_id=run.pk).exists()
    assert _snapshot() == before  # not one email blanked, not one row touched


def test_a_missing_optional_column_leaves_its_field_as_it_is(buyers_sheet, settings) -> None:
    set_source_key(settings, "buyers", 'optional_columns = ["Email", "Budget"]')
    rows = list(buyer_rows(30, 0))
    buyers_sheet(rows)
    assert run_ingest("buyers").created == 30
    before = _snapshot()
    assert all(email for email, *_ in before.values())
    rows[3][1] = "renamed"  # row 5: a change the sheet does hold
    new = list(buyer_rows(31, 0))[30]  # a row the database does not have yet
    headers, cut = _without(BUYER_HEADERS, [*rows, new], {"Email", "Budget"})
    buyers_sheet(cut, headers=headers)
    run = run_ingest("buyers")
    assert (run.status, run.created, run.updated, run.unchanged) == ("succeeded", 1, 1, 29)
    assert run.schema_report["missing_headers"] == ["Email", "Budget"]
    assert run.verification["sample"]["mismatches"] == []
    after = _snapshot()
    for key, (email, budget, name, _version) in before.items():
        assert after[key][:2] == (email, budget)  # never blanked
        assert after[key][2] == ("renamed" if key == rows[3][0] else name)
    created = Buyer.objects.get(buyer_number=new[0])
    assert (created.email, created.budget, created.name) == ("", None, new[1])  # defaults


def test_an_optional_column_must_be_one_that_can_be_left_out(settings) -> None:
    for line, message in (
        ('optional_columns = ["Nope"]', "'Nope', which is not a header of columns"),
        ('optional_columns = ["Name"]', "feeds name, which is the natural key or required"),
        ('optional_columns = ["Buyer Number"]', "which is the natural key or required"),
        ('optional_columns = "Email"', "optional_columns must be a list of sheet headers"),
    ):
        set_source_key(settings, "buyers", line)
        with pytest.raises(SourceConfigError, match=message):
            get_source("buyers")
        path = Path(settings.SYNC_INGEST_SOURCES_FILE)
        path.write_text(path.read_text().replace(line + "\n", ""))
    add_source(
        settings,
        """
[sources.stamped]
target = "buyers.buyer"
natural_key = "buyer_number"
optional_columns = ["Created"]
[sources.stamped.columns]
"Buyer Number" = "buyer_number"
"Created" = "created_at"
""",
    )
    with pytest.raises(SourceConfigError, match="NOT NULL without a database default"):
        get_source("stamped")


def test_a_child_needs_one_column_that_is_not_optional(settings) -> None:
    add_source(
        settings,
        """
[sources.lots]
target = "sellers.seller"
natural_key = "seller_number"
child = { target = "sellers.property", parent_field = "seller" }
optional_columns = ["Property Type"]
[sources.lots.columns]
"Seller Number" = "seller_number"
"Property Type" = "property.property_type"
""",
    )
    with pytest.raises(SourceConfigError, match="at least one property column must not be"):
        get_source("lots")


# --------------------------------------------------------------------------- duplicate keys


@pytest.mark.parametrize(
    ("batch_size", "in_memory"), [(100, 100_000), (7, 100_000), (1000, 100_000), (100, 100), (7, 1)]
)
def test_a_key_on_rows_far_apart_stores_none_of_them(
    buyers_sheet, batch_size, in_memory, monkeypatch
) -> None:
    # A small sheet's keys are kept in memory; past IN_MEMORY keys they spill to the
    # temporary table (here mid-sheet: some repeats found in memory, the rest there).
    monkeypatch.setattr(keys, "IN_MEMORY", in_memory)
    monkeypatch.setattr(keys, "CHUNK", 64)  # the pre-scan's keys copied in several chunks
    rows = list(buyer_rows(250, 0))
    buyers_sheet(rows)
    run_ingest("buyers")
    before = _snapshot()
    key = rows[3][0]  # row 5 ...
    rows[3][8] = "first copy"
    rows.insert(238, [key, *rows[100][1:]])  # ... again on row 240, another batch
    rows[238][8] = "second copy"
    rows.append([key, *rows[4][1:]])  # ... and on the last row, 253
    other = rows[10][0]
    rows[11][0] = other  # rows 12 and 13 share a key too (13's own key leaves the sheet)
    buyers_sheet(rows)
    run = run_ingest("buyers", batch_size=batch_size)
    assert run.status == "partial"
    assert run.failed == 5
    # (Row 13's own key, no longer in the sheet, may be reported apart: no row number.)
    errors = {
        e.row_number: e for e in ErrorLog.objects.filter(run_id=run.pk).exclude(row_number=None)
    }
    assert set(errors) == {5, 240, 253, 12, 13}
    assert {(e.category, e.code, e.column) for e in errors.values()} == {
        ("conflict", "duplicate_key", "Buyer Number")
    }
    assert "is also on rows 240, 253: none of these 3 rows is stored" in errors[5].reason
    assert "is also on rows 5, 253" in errors[240].reason
    assert "is also on rows 5, 240" in errors[253].reason
    assert "is also on row 13: none of these 2 rows" in errors[12].reason
    after = _snapshot()
    assert after[key] == before[key]  # the database row is left as it was
    assert after[other] == before[other]
    actions = dict(
        RecordLog.objects.filter(run_id=run.pk, row_number__in=[5, 240, 253]).values_list(
            "row_number", "action"
        )
    )
    assert actions == {5: "failed", 240: "failed", 253: "failed"}
    assert run.unchanged == 252 - 5  # every other row is stored (here: unchanged)
    verification = run.verification
    assert verification["duplicates"] == {key: [5, 240, 253], other: [12, 13]}
    # The sheet's keys against the database: a key held twice counts once, and is in it.
    assert verification["sheet_count"] == 249
    assert verification["database_count"] == 249
    assert verification["gaps"] == 0


@pytest.mark.parametrize("in_memory", [100_000, 1])
@pytest.mark.parametrize("sheet", ["xlsx", "measured csv"])
def test_duplicates_far_apart_in_a_workbook_or_a_measured_csv(
    buyers_sheet, sheet, in_memory, monkeypatch
) -> None:
    """The pre-scan's other read (rows passed on: spooled, or measured for the schema check)
    finds the same duplicates, in memory or in the temporary table."""
    monkeypatch.setattr(keys, "IN_MEMORY", in_memory)
    rows = list(buyer_rows(40, 0))
    rows.append([rows[2][0], *rows[30][1:]])  # row 4's key again on row 42
    if sheet == "xlsx":
        path = buyers_sheet(rows, name="buyers.xlsx")
    else:
        alter_columns("buyers", ["name"], "varchar(200)")  # a limited column: measured
        path = buyers_sheet(rows)
    run = run_ingest("buyers", file=str(path), batch_size=10)
    assert (run.status, run.created, run.failed) == ("partial", 39, 2)
    reasons = dict(
        ErrorLog.objects.filter(run_id=run.pk, code="duplicate_key").values_list(
            "row_number", "reason"
        )
    )
    assert set(reasons) == {4, 42}
    assert "is also on row 42: none of these 2 rows is stored" in reasons[4]
    assert run.rows_total == 41
    if sheet != "xlsx":
        assert run.schema_report["rows_scanned"] == 41


def test_duplicates_of_a_new_key_are_gaps_with_their_reason(buyers_sheet) -> None:
    rows = list(buyer_rows(5, 0))
    rows.append(list(rows[0]))
    rows.append(["", *rows[1][1:]])  # no key at all: a validation failure, not a duplicate
    buyers_sheet(rows)
    run = run_ingest("buyers", batch_size=2)
    assert (run.status, run.created, run.failed) == ("partial", 4, 3)
    assert not Buyer.objects.filter(buyer_number=rows[0][0]).exists()
    assert run.verification["gap_keys"] == [rows[0][0]]
    assert run.verification["unexplained_gaps"] == []  # explained: no re-sync, no alert
    assert run.errors_by_category == {"conflict": 2, "validation": 1}


class _CountedReads(list):
    """A Google Sheet that counts the requests for its data rows, and answers them with
    ``then`` from the second on (someone typing in it while a run reads it)."""

    def __init__(self, first: list, then: list) -> None:
        super().__init__(first)
        self.then = then
        self.reads = 0

    def __getitem__(self, index):
        if isinstance(index, slice) and index.start:  # a chunk of data rows
            self.reads += 1
            if self.reads > 1:
                return list.__getitem__(self.then, index)
        return super().__getitem__(index)


def test_a_file_edited_during_the_run_is_said_loudly(buyers_sheet) -> None:
    rows = list(buyer_rows(6, 0))
    path = buyers_sheet(rows)
    edited = [*rows, [rows[1][0], "typed in meanwhile", *rows[1][2:]]]
    # After the pre-scan read the file, before the load reads it again.
    run = run_ingest("buyers", before_load=lambda: buyers_sheet(edited))
    assert path.read_text().count(rows[1][0]) == 2
    assert run.status == "partial"
    changed = ErrorLog.objects.get(run_id=run.pk, code="sheet_changed")
    assert changed.category == "conflict"
    assert "the sheet changed while the run read it" in changed.reason
    # The repeat the pre-scan could not see is still reported, with both rows.
    superseded = ErrorLog.objects.get(run_id=run.pk, code="duplicate_key")
    assert superseded.row_number == 3
    assert "row 8" in superseded.reason


def test_a_csv_file_edited_anywhere_during_the_run_is_said(buyers_sheet) -> None:
    """A CSV file's two reads are compared by their bytes: an edit of any cell counts (the
    load read values the pre-scan did not see), an untouched file does not."""
    rows = list(buyer_rows(6, 0))
    buyers_sheet(rows)
    run = run_ingest("buyers", before_load=lambda: buyers_sheet(rows))  # the same bytes
    assert (run.status, run.created) == ("succeeded", 6)
    edited = [list(row) for row in rows]
    edited[3][1] = "typed in meanwhile"
    run = run_ingest("buyers", before_load=lambda: buyers_sheet(edited))
    assert run.status == "partial"
    assert ErrorLog.objects.filter(run_id=run.pk, code="sheet_changed").count() == 1


def test_a_google_sheet_is_read_once_per_run(settings, sheets_server) -> None:
    """Its rows are kept from the pre-scan for the load (pipeline/spool.py): one request per
    chunk of rows, and the rows loaded are the rows whose keys were checked, whatever is typed in
    the sheet meanwhile."""
    add_source(settings, SHEET_SOURCE)
    head = ["Buyer Number", "Name", "Status", "Budget", "Notes"]
    rows = [[r[0], r[1], r[8], r[7], r[11]] for r in buyer_rows(6, 0)]
    edited = [*rows, [rows[1][0], "typed in meanwhile", "", "", ""]]
    sheet = sheets_server.sheets["sheet-1"] = _CountedReads([head, *rows], [head, *edited])
    run = run_ingest("buyers_sheet")
    assert run.status == "succeeded", run.message
    assert sheet.reads == 1  # the pre-scan's request; the load read the spool
    assert run.created == 6
    assert not ErrorLog.objects.filter(run_id=run.pk).exists()
    assert Buyer.objects.get(buyer_number=rows[1][0]).name == rows[1][1]


# --------------------------------------------------------------------------- missing rows


def _commands_fail(match: str) -> None:
    for command in ("sync_find_missing", "sync_missing"):
        out = StringIO()
        with pytest.raises(CommandError, match=match):
            call_command(command, "buyers", stdout=out)
        assert "missing 0" not in out.getvalue()


def test_missing_rows_commands_refuse_a_sheet_without_its_key_column(
    buyers_sheet, tmp_path
) -> None:
    rows = list(buyer_rows(4, 0))
    headers = ["Number", *BUYER_HEADERS[1:]]  # the key column is not there at all
    buyers_sheet(rows, headers=headers)
    _commands_fail("cannot read the key column .*'Buyer Number'.* nothing was compared")
    (tmp_path / "buyers.csv").write_bytes(b"")  # an empty file
    _commands_fail("empty")
    buyers_sheet([["", *r[1:]] for r in rows])  # the column is there, and empty
    _commands_fail("'Buyer Number' column of .* is empty on all 4 rows")
    assert not Buyer.objects.exists()


def test_missing_rows_commands_refuse_the_wrong_worksheet(settings, tmp_path) -> None:
    path = tmp_path / "book.xlsx"
    book = openpyxl.Workbook()
    book.active.title = "Summary"
    book.active.append(["Region", "Buyers"])
    book.active.append(["North", 12])
    data = book.create_sheet("Buyers")
    data.append(BUYER_HEADERS)
    for row in buyer_rows(3, 0):
        data.append(row)
    book.save(path)
    set_source_key(settings, "buyers", 'worksheet = "Summary"')
    for command in ("sync_find_missing", "sync_missing"):
        with pytest.raises(CommandError, match=r"has no 'Buyer Number' column .*'Region'"):
            call_command(command, "buyers", "--file", str(path), stdout=StringIO())
    path_text = Path(settings.SYNC_INGEST_SOURCES_FILE)
    path_text.write_text(
        path_text.read_text().replace('worksheet = "Summary"', 'worksheet = "Buyers"')
    )
    out = StringIO()
    call_command("sync_find_missing", "buyers", "--file", str(path), stdout=out)
    assert "sheet 3 keys (3 rows), 0 of them in the database, missing 3" in out.getvalue()


@pytest.mark.parametrize("variant", ["semicolons", "stray spaces"])
def test_missing_rows_never_say_0_for_a_sheet_they_misread(buyers_sheet, tmp_path, variant) -> None:
    rows = list(buyer_rows(3, 0))
    path = tmp_path / "buyers.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        if variant == "semicolons":
            writer = csv.writer(handle, delimiter=";")
            writer.writerow(BUYER_HEADERS)
        else:
            writer = csv.writer(handle)
            writer.writerow([f" {h} " for h in BUYER_HEADERS])
        writer.writerows(rows)
    out = StringIO()
    try:
        call_command("sync_find_missing", "buyers", stdout=out)
    except CommandError as e:  # cannot see the key column: says so
        assert "Buyer Number" in str(e)
    else:  # reads it (the reader matched the header or the delimiter): counts right
        assert "missing 3" in out.getvalue()


def test_missing_counts_are_per_source(buyers_sheet, settings, tmp_path) -> None:
    east = tmp_path / "east.csv"
    add_source(settings, get_source_text("buyers_east", east))
    rows = list(buyer_rows(7, 0))
    buyers_sheet(rows[:4])
    buyers_sheet([*rows[4:], rows[4]], name="east.csv")  # a key twice counts once
    run_ingest("buyers")
    run_ingest("buyers_east")  # rows 5 and 6 hold one key: neither is stored
    Buyer.objects.filter(buyer_number=rows[6][0]).delete()
    out = StringIO()
    call_command("sync_find_missing", "buyers_east", stdout=out)
    assert out.getvalue().splitlines()[-1] == (
        "buyers_east: sheet 3 keys (4 rows), 1 of them in the database, missing 2 "
        "(the table holds 5 rows from every source)"
    )
    buyers_sheet([rows[0], ["", *rows[1][1:]]])
    out = StringIO()
    call_command("sync_find_missing", "buyers", stdout=out, verbosity=0)
    assert out.getvalue() == (
        "buyers: sheet 1 keys (2 rows, 1 row(s) without a key), 1 of them "
        "in the database, missing 0 (the table holds 5 rows from every "
        "source)\n"
    )


def get_source_text(name: str, path: Path) -> str:
    columns = "\n".join(f'"{h}" = "{get_source("buyers").columns[h]}"' for h in BUYER_HEADERS)
    return (
        f'[sources.{name}]\ntarget = "buyers.buyer"\nnatural_key = "buyer_number"\n'
        f'location = "{path}"\nrequired = ["buyer_number", "name"]\n'
        f"[sources.{name}.columns]\n{columns}\n"
    )


# --------------------------------------------------------------------------- sources file


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('encodng = "cp1252"', "source 'buyers' .*unknown key 'encodng'"),
        ('encoding = "klingon"', "source 'buyers' .*encoding = 'klingon' is not valid"),
        ('delimiter = ";;"', "delimiter = ';;' is not valid: delimiter must be one character"),
        ("delimiter = 1", "delimiter = 1 is not valid"),
        ('batch_size = "100"', "batch_size must be at least 1, not '100'"),
        ("batch_size = true", "batch_size must be at least 1"),
        ('required = "name"', "required = 'name' is not valid"),
        ('auto_recovery = "yes"', "auto_recovery = 'yes' is not valid"),
        ("key_pattern = 5", "key_pattern = 5 is not valid"),
        ('location = ["a"]', "location = \\['a'\\] is not valid"),
    ],
)
def test_an_unknown_key_or_bad_value_names_the_source_and_key(
    buyers_sheet, settings, line, message
) -> None:
    buyers_sheet(count=3)
    path = Path(settings.SYNC_INGEST_SOURCES_FILE)  # the buyers' own line of that key, gone
    path.write_text(re.sub(rf"(?m)^{line.split(' =')[0]} = .*\n", "", path.read_text(), count=1))
    set_source_key(settings, "buyers", line)
    with pytest.raises(SourceConfigError, match=message):
        run_ingest("buyers")  # at run start: nothing read, nothing written
    with pytest.raises(SystemCheckError, match=f"sync.E101.*{message}"):
        call_command("check", stdout=StringIO(), stderr=StringIO())
    assert not Buyer.objects.exists()


X_HEAD = '[sources.x]\ntarget = "buyers.buyer"\nnatural_key = "buyer_number"\n'
X_COLUMNS = '[sources.x.columns]\n"N" = "buyer_number"\n'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (X_HEAD + "[sources.x.columns]\n", "columns = {} is not valid"),
        (
            X_HEAD + 'child = { target = "sellers.property", parent = "seller" }\n' + X_COLUMNS,
            "child = .* is not valid",
        ),
        (X_HEAD + 'required = ["nmae"]\n' + X_COLUMNS, "required names nmae, which no column"),
        (X_HEAD + X_COLUMNS + "[sources.x.extra]\nfoo = 1\n", "unknown key 'extra'"),
    ],
)
def test_bad_source_tables(settings, text, message) -> None:
    add_source(settings, text)
    with pytest.raises(SourceConfigError, match=message):
        get_source("buyers")


def test_bad_file_shapes(settings) -> None:
    path = Path(settings.SYNC_INGEST_SOURCES_FILE)
    original = path.read_text()
    for text, message in (
        ("colums = 1\n", "unknown top-level key 'colums'"),
        ("sources = 1\n", "sources must be tables"),
        ("[sources]\nx = 1\n", "source 'x' .*must be a table"),
    ):
        path.write_text(text)
        with pytest.raises(SourceConfigError, match=message):
            get_source("buyers")
    path.write_text(original)
    call_command("check", stdout=StringIO())  # the project's own file is valid


def test_declared_encoding_and_delimiter_reach_the_configuration(settings) -> None:
    set_source_key(settings, "buyers", 'encoding = "cp1252"\ndelimiter = ";"')
    config = get_source("buyers")
    assert (config.encoding, config.delimiter) == ("cp1252", ";")
    assert config.options == {"encoding": "cp1252", "delimiter": ";"}

"""A run's rejected rows as a CSV file: the sheet's own columns plus ``row``,
``column`` and ``reason``, one line per reported row, ready to fix and upload again; PII
columns only for PII viewers; cells a spreadsheet would run as formulas escaped."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from django.urls import reverse
from django.utils import timezone

from buyers.models import Buyer
from devtools.sheets import BUYER_HEADERS, buyer_rows
from sync.console.rejects import csv_safe
from sync.ingest.pipeline import run_ingest
from sync.ingest.uploads import run_upload
from sync.models import StaffAction, SyncRun, SyncUpload
from tests.console.sources import sources_file
from tests.console.test_upload import sheet_bytes, upload

pytestmark = pytest.mark.django_db

EXTRA_HEADER = "Private remarks"  # a column the source does not map: its content is unknown
CANARY_NAME, CANARY_MAIL, CANARY_REMARK = (
    "Zebulon Rejectwright",
    "zeb.reject@pii-canary.example",
    "remark-canary-xyzzy",
)


@pytest.fixture(autouse=True)
def _sources(settings, tmp_path) -> Path:
    settings.SYNC_INGEST_SOURCES_FILE = str(sources_file(tmp_path))
    return tmp_path


def bad_sheet() -> tuple[list[str], list[list[str]]]:
    """Ten buyers, an unmapped column; rows 3, 5 and 9 fail (row 5 twice), row 9 carries
    formula-like cells."""
    headers = [*BUYER_HEADERS, EXTRA_HEADER]
    rows = [[*row, f"remark {i}"] for i, row in enumerate(buyer_rows(10, 0))]
    rows[1][10] = "2024-13-45"  # row 3: not a date
    rows[3][7] = "lots"  # row 5: budget
    rows[3][10] = "someday"  # row 5: date too
    rows[3][1], rows[3][2], rows[3][12] = CANARY_NAME, CANARY_MAIL, CANARY_REMARK
    rows[7][0] = '=HYPERLINK("http://evil.example","x")'  # row 9: a formula as its key
    rows[7][5] = "+cmd|' /C calc'!A0"  # Desired Area
    rows[7][6] = "@SUM(1+1)"  # Property Type
    rows[7][9] = "-12.5"  # a number stays as it is
    return headers, rows


def rejects(client, run_id: int) -> tuple[object, list[list[str]]]:
    response = client.get(reverse("admin:console_run_rejects", args=[run_id]))
    if response.status_code != 200:
        return response, []
    text = b"".join(response.streaming_content).decode("utf-8")
    assert text.startswith("\ufeff")
    return response, list(csv.reader(io.StringIO(text.removeprefix("\ufeff"))))


def uploaded_run(client) -> SyncRun:
    headers, rows = bad_sheet()
    upload(client, sheet_bytes(rows, headers))
    item = SyncUpload.objects.get()
    client.post(reverse("admin:console_upload_confirm", args=[item.pk]))
    item.refresh_from_db()
    return run_upload(upload_id=item.pk, run_id=item.run_id)


def test_a_pii_viewer_gets_every_column_of_the_rejected_rows(client_for) -> None:
    run = uploaded_run(client_for("operator"))
    assert run.failed == 3
    response, lines = rejects(client_for("superuser"), run.pk)  # operator and PII viewer
    assert response["Content-Disposition"] == (
        f'attachment; filename="buyers-run-{run.pk}-rejects.csv"'
    )
    assert lines[0] == [*BUYER_HEADERS, EXTRA_HEADER, "row", "column", "reason"]
    by_row = {line[-3]: line for line in lines[1:]}
    assert sorted(by_row, key=int) == ["3", "5", "9"]
    five = by_row["5"]
    assert five[1:3] == [CANARY_NAME, CANARY_MAIL] and five[12] == CANARY_REMARK
    assert five[7] == "lots" and five[10] == "someday"
    assert five[-2] == "Budget, Inquiry Date"
    assert "is not a number" in five[-1] and "is not a date" in five[-1]
    assert by_row["3"][0] == "B-00002" and "Inquiry Date" in by_row["3"][-2]
    # The preview's rejects are the same file (the same rows failed).
    item = SyncUpload.objects.get()
    _response, preview_lines = rejects(client_for("superuser"), item.preview_run_id)
    assert preview_lines == lines
    assert StaffAction.objects.filter(action="run.rejects").count() == 2


def test_without_the_pii_role_personal_and_unmapped_columns_are_left_out(client_for) -> None:
    run = uploaded_run(client_for("operator"))
    response, lines = rejects(client_for("operator"), run.pk)
    assert response.status_code == 200
    assert response["Content-Disposition"].endswith('-rejects-without-pii.csv"')
    assert lines[0] == [
        "Buyer Number",
        "Desired Area",
        "Property Type",
        "Budget",
        "Status",
        "Inquiry Source",
        "Inquiry Date",
        "row",
        "column",
        "reason",
    ]
    text = "\n".join(",".join(line) for line in lines)
    for canary in (CANARY_NAME, CANARY_MAIL, CANARY_REMARK, "Zebulon", "pii-canary"):
        assert canary not in text
    assert [line[-3] for line in lines[1:]] == ["3", "5", "9"]


def test_viewers_and_pii_viewers_without_the_operator_role_cannot_download(client_for) -> None:
    run = uploaded_run(client_for("operator"))
    for role in ("viewer", "pii_viewer"):
        response, _lines = rejects(client_for(role), run.pk)
        assert response.status_code == 403
    response, _lines = rejects(client_for("anonymous"), run.pk)
    assert response.status_code == 302
    assert (
        client_for("operator").get(reverse("admin:console_run_rejects", args=[999999])).status_code
        == 404
    )


def test_cells_that_would_run_as_formulas_are_escaped(client_for) -> None:
    run = uploaded_run(client_for("operator"))
    _response, lines = rejects(client_for("superuser"), run.pk)
    nine = next(line for line in lines if line[-3] == "9")
    assert nine[0] == '\'=HYPERLINK("http://evil.example","x")'
    assert nine[5] == "'+cmd|' /C calc'!A0"
    assert nine[6] == "'@SUM(1+1)"
    assert nine[9] == "-12.5"
    for cell in (c for line in lines for c in line):
        assert not cell.startswith(("=", "+", "@", "\t", "\r")), cell
    assert [csv_safe(v) for v in ("-1", "+31 6 1234", "-", "@", "a=b", "\tx", "1,000.5")] == [
        "-1",
        "'+31 6 1234",
        "'-",
        "'@",
        "a=b",
        "'\tx",
        "1,000.5",
    ]


def test_fixed_rejects_upload_again_and_load(client_for) -> None:
    operator = client_for("superuser")
    run = uploaded_run(client_for("operator"))
    _response, lines = rejects(operator, run.pk)
    header, body = lines[0], lines[1:]
    date, budget, key = header.index("Inquiry Date"), header.index("Budget"), 0
    for line in body:
        line[date] = "2024-05-06"
        line[budget] = "1000000"
        if line[key].startswith("'="):
            line[key] = "B-00008"
    fixed = io.StringIO()
    csv.writer(fixed).writerows([header, *body])
    response = upload(operator, fixed.getvalue().encode(), name="fixed.csv")
    item = SyncUpload.objects.get(filename="fixed.csv")
    preview = SyncRun.objects.get(pk=item.preview_run_id)
    assert (preview.created, preview.failed) == (3, 0), preview.message
    page = operator.get(response["Location"]).content.decode()
    for extra in ("row", "column", "reason"):
        assert f"<code>{extra}</code>" in page  # reported as unmapped, ignored


def test_a_scheduled_run_reads_its_file_and_says_when_it_changed(client_for, tmp_path) -> None:
    headers, rows = bad_sheet()
    path = tmp_path / "buyers.csv"
    path.write_bytes(sheet_bytes(rows, headers))
    run = run_ingest("buyers", trigger="schedule")
    assert run.failed == 3
    client = client_for("superuser")
    _response, lines = rejects(client, run.pk)
    assert [line[-3] for line in lines[1:]] == ["3", "5", "9"]
    assert lines[2][1] == CANARY_NAME
    # The file is replaced: row 3 now holds another buyer; row 9 is gone.
    path.write_bytes(sheet_bytes(rows[2:7], headers))
    _response, lines = rejects(client, run.pk)
    three = lines[1]
    assert three[-3] == "3" and three[0] == ""
    assert "the sheet changed since the run" in three[-1]
    nine = lines[3]
    assert nine[-3] == "9" and "the sheet has no row 9 any more" in nine[-1]
    path.unlink()
    _response, lines = rejects(client, run.pk)
    assert all("no longer available" in line[-1] for line in lines[1:])


def test_a_purged_upload_still_lists_its_rejected_rows(client_for) -> None:
    run = uploaded_run(client_for("operator"))
    SyncUpload.objects.update(content=b"", purged_at=timezone.now())
    _response, lines = rejects(client_for("superuser"), run.pk)
    assert lines[0] == ["row", "column", "reason"]
    assert [line[0] for line in lines[1:]] == ["3", "5", "9"]
    assert all("no longer available" in line[-1] for line in lines[1:])


def test_a_run_without_rejects_gives_the_header_only(client_for, tmp_path) -> None:
    (tmp_path / "buyers.csv").write_bytes(sheet_bytes(list(buyer_rows(3, 0))))
    run = run_ingest("buyers")
    assert run.failed == 0 and Buyer.objects.count() == 3
    _response, lines = rejects(client_for("operator"), run.pk)
    assert lines == [["row", "column", "reason"]]


def test_an_earlier_preview_of_a_file_previewed_again_reads_the_same_file(client_for) -> None:
    client = client_for("superuser")
    headers, rows = bad_sheet()
    upload(client, sheet_bytes(rows, headers))
    item = SyncUpload.objects.get()
    first = item.preview_run_id
    client.post(reverse("admin:console_upload_repreview", args=[item.pk]))
    item.refresh_from_db()
    assert item.preview_run_id != first
    _response, old = rejects(client, first)
    _response, new = rejects(client, item.preview_run_id)
    assert old == new and [line[-3] for line in old[1:]] == ["3", "5", "9"]
    assert old[2][1] == CANARY_NAME


def test_rejects_read_an_office_export_as_the_run_did(client_for, settings) -> None:
    """Windows-1252, semicolons, a header with stray spaces and another case: the rejects
    file holds the row's cells, as the run read them."""
    rows = [
        [cell.encode("cp1252", "replace").decode("cp1252") for cell in row]
        for row in buyer_rows(5, 0)
    ]  # what Windows-1252 can hold
    rows[1][10] = "2024-13-45"
    rows[1][5] = "Café Straße"
    out = io.StringIO()
    csv.writer(out, delimiter=";").writerows([[" buyer NUMBER ", *BUYER_HEADERS[1:]], *rows])
    client = client_for("superuser")
    upload(client, out.getvalue().encode("cp1252"))
    item = SyncUpload.objects.get()
    page = client.get(reverse("admin:console_upload", args=[item.pk])).content.decode()
    assert 'id="pv-format"' in page and "delimiter" in page  # how the file was read
    _response, lines = rejects(client, item.preview_run_id)
    assert lines[0][0].strip().casefold() == "buyer number"
    assert lines[1][0] == rows[1][0] and lines[1][5] == "Café Straße"
    assert lines[1][-3:-1] == ["3", "Inquiry Date"]
    assert "changed since the run" not in lines[1][-1]

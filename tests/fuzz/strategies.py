"""Hypothesis strategies for bad spreadsheet input, and the oracle every outcome must meet."""

from __future__ import annotations

import csv
import io

from hypothesis import strategies as st

from devtools.sheets import BUYER_HEADERS
from sync.ingest.exceptions import SourceUnavailableError

# csv's default field limit: a longer field cannot be read, the file gets one clear error.
HUGE = csv.field_size_limit() + 10
NASTY = [
    "",
    " ",
    '"',
    '""',
    'a"b',
    '"quoted"',
    "\x00",
    "a\x00b",
    "\r",
    "\n",
    "\r\n",
    ",",
    ";",
    "\t",
    "\u202e",
    "😀" * 40,
    "B-00001",
    " B-00002 ",
    "b-00003",
    "B-1",
    "12,000,000",
    "1e400",
    "NaN",
    "2024-02-30",
    "=1+1",
    "#N/A",
    "TRUE",
]
# NOTE: no U+FEFF inside cells: at the very start of a file it is a BOM and is stripped,
# which the exact oracle below would read as a lost character; BOMs are added on purpose.
cell = st.one_of(
    st.text(
        st.characters(blacklist_characters="\ufeff", blacklist_categories=("Cs",)), max_size=30
    ),
    st.sampled_from(NASTY),
    st.text("x", min_size=1000, max_size=5000),
)
key = st.one_of(
    st.from_regex(r"B-\d{5}", fullmatch=True), st.from_regex(r"B-\d{5}", fullmatch=True), cell
)
headers = st.one_of(
    st.permutations(BUYER_HEADERS),
    st.lists(st.sampled_from([*BUYER_HEADERS, "", "Extra", "buyer number"]), max_size=15),
    st.lists(cell, max_size=6),
)


@st.composite
def sheets(draw, *, huge: bool = True) -> tuple[list[str], list[list[str]]]:
    """A header row and ragged data rows (the key first when the header has it)."""
    head = list(draw(headers))
    rows = draw(st.lists(st.lists(cell, max_size=len(head) + 3), max_size=12))
    if "Buyer Number" in head:
        at = head.index("Buyer Number")
        for row in rows:
            if len(row) > at:
                row[at] = draw(key)
    if huge and draw(st.integers(0, 30)) == 0:  # rarely: a field csv cannot read at all
        target = draw(st.sampled_from([head, *rows])) if rows else head
        target.append("y" * HUGE)
    return head, rows


def csv_text(head: list[str], rows: list[list[str]], lineterminator: str) -> str:
    out = io.StringIO()
    # NOTE: csv's writer leaves a lone CR unquoted (a reader then ends the row there), as
    # no spreadsheet program does: such cells are quoted, like every cell of the row.
    breaks = any("\r" in c or "\n" in c for r in [head, *rows] for c in r)
    writer = csv.writer(
        out, lineterminator=lineterminator, quoting=csv.QUOTE_ALL if breaks else csv.QUOTE_MINIMAL
    )
    writer.writerow(head)
    writer.writerows(rows)
    return out.getvalue()


@st.composite
def csv_files(draw) -> tuple[bytes, tuple[list[str], list[list[str]]] | None]:
    """Bytes of a .csv file, and the sheet they hold when they are well-formed UTF-8 CSV
    (``None``: anything goes, only a clear error or rows are acceptable)."""
    kind = draw(st.sampled_from(["csv", "csv", "csv", "raw", "bytes"]))
    if kind == "bytes":
        return draw(st.binary(max_size=400)), None
    head, rows = draw(sheets())
    ending = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    if kind == "raw":  # no quoting at all: stray quotes, separators and line ends inside
        text = ending.join(",".join(r) for r in [head, *rows])
    else:
        text = csv_text(head, rows, ending)
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-8-sig", "utf-16", "latin-1", "cp1252"]))
    data = text.encode(encoding, errors="replace")
    wellformed = kind == "csv" and encoding in ("utf-8", "utf-8-sig")
    if draw(st.booleans()) and data:  # a damaged file: a cut, or a byte replaced
        at = draw(st.integers(0, len(data) - 1))
        data = (
            data[:at]
            if draw(st.booleans())
            else (data[:at] + bytes([draw(st.integers(0, 255))]) + data[at + 1 :])
        )
        wellformed = False
    return data, (head, rows) if wellformed else None


def assert_clear(error: Exception, location: str) -> None:
    """A whole-file error a person can act on: what is wrong with which file, no traceback."""
    assert isinstance(error, SourceUnavailableError), repr(error)
    message = str(error)
    assert location in message, message
    assert "Traceback" not in message
    assert len(message) < 2000, message[:300]

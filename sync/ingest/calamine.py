"""XLSX rows through python-calamine (Rust: ~30x openpyxl's XML parse), where it reads what
openpyxl reads; openpyxl everywhere else.

calamine gives a cell's saved value and nothing more: a formula without a saved value, an
error value (``#N/A``) and an empty cell all read as ``""``, and it decides on its own which
number formats are dates. openpyxl (``sources.XlsxSource``) tells those apart: a formula
without a value marks its row (``FormulaRow``), an error reads as its text, a ``00000``
format keeps its leading zeros. So before calamine reads a sheet, ``plan`` looks at the
workbook (its styles, and the sheet's XML for formulas, error cells and ISO date cells: one
pass of ``bytes.find`` over the decompressed XML) and names the first thing only openpyxl
reads right; then the whole sheet is read with openpyxl, and the run's log says why. While
calamine reads, a value whose text it may have changed (an integer past 2**53 read as a
float, a date before March 1900 or with sub-second digits) hands the rest of the sheet, from
that row on, to openpyxl (``Doubt``). Silently different text is the worst outcome (DESIGN
I10/I11): when in doubt, openpyxl. tests/ingest/test_calamine.py proves both readers agree
on every cell kind calamine is left with.
"""

from __future__ import annotations

import datetime
import posixpath
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from xml.etree import ElementTree as ET

from sync.ingest.sources import cell_text

MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
RELS = "{http://schemas.openxmlformats.org/package/2006/relationships}"
REL_ID = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}id"
WORKSHEET = "/worksheet"  # how a worksheet's relationship type ends
# Built-in number formats both readers read alike (tests/ingest/test_calamine.py): General,
# numbers, percentages, scientific, fractions, accounting, text; and dates and times (14-22,
# 45-47), read as the same date or datetime (a time or a duration: see ``_text``).
NUMBER_FORMATS = frozenset([*range(14), *range(37, 45), 48, 49])
DATE_FORMATS = frozenset([*range(14, 23), 45, 46, 47])
# A custom format's literal parts (quoted text, escapes, [brackets], spacing and fill).
_LITERALS = re.compile(r'"[^"]*"|\\.|\[[^\]]*\]|_.|\*.')
# What is left of a custom number format (digits, grouping, scientific E+), and of a plain
# date or time format: both readers read those alike; anything else may differ.
_NUMBER = re.compile(r"[0#?.,%/ E+\-@;()]*")
_DATE = re.compile(r"(?:[ymdhs]+|AM/PM|A/P|[ ,./:\-;])+", re.IGNORECASE)
LAST_DATE = 2958465  # 9999-12-31: past it openpyxl reads an error, calamine the number
_DIMENSION = re.compile(rb'<(?:\w+:)?dimension\s+ref="([A-Z]+)?\d*(?::([A-Z]+)\d+)?"')
# In the sheet's XML: the end of a formula (``</f>``, ``<f>``, prefixed or not), an error
# cell, an ISO-date cell. Any of them (or something that only looks like one): openpyxl.
_ONLY_OPENPYXL = ((b"f>", "formulas"), (b't="e"', "error values"), (b't="d"', "ISO date cells"))
BIG = 2**53  # past this a float has no unit digit: an integer read as one may be changed
CHUNK = 1 << 22
# Whitespace right after a tag: calamine reads text of only spaces as an empty cell.
_BLANK_TEXT = re.compile(rb">[ \t\r\n]")
_ROWS = re.compile(rb'<row r="(\d+)"')  # openpyxl refuses rows out of order: damage


class Doubt(Exception):  # noqa: N818 - control flow: openpyxl reads the rest
    def __init__(self, row: int, reason: str) -> None:
        super().__init__(reason)
        self.row = row
        self.reason = reason


@dataclass
class Plan:
    """How a sheet is read: by calamine (``reason`` empty) or openpyxl (``reason`` says why)."""

    reason: str = ""
    sheet: str = ""  # the worksheet's name (the first worksheet when none is given)
    width: int = 0  # the sheet's declared columns (openpyxl pads rows to them)
    dates: bool = False  # some cell style is a date or time format


def plan(location: str, worksheet: str) -> Plan:
    """Whether calamine reads ``worksheet`` (the first worksheet when empty) as openpyxl would.
    Anything that cannot be read here is for openpyxl to read and report."""
    try:
        with zipfile.ZipFile(location) as archive:
            return _plan(archive, worksheet)
    except Exception as e:  # noqa: BLE001 - damage of any kind: openpyxl reports it
        return Plan(f"the workbook's structure ({type(e).__name__})")


def _plan(archive: zipfile.ZipFile, worksheet: str) -> Plan:
    book = ET.fromstring(archive.read("xl/workbook.xml"))  # noqa: S314 - see the import
    properties = book.find(f"{MAIN}workbookPr")
    if properties is not None and properties.get("date1904") in ("1", "true"):
        return Plan("dates counted from 1904")
    rels = ET.fromstring(archive.read("xl/_rels/workbook.xml.rels"))  # noqa: S314
    targets = {
        rel.get("Id"): rel.get("Target", "")
        for rel in rels.iter(f"{RELS}Relationship")
        if rel.get("Type", "").endswith(WORKSHEET)
    }
    sheets = [
        (sheet.get("name", ""), targets[sheet.get(REL_ID)])
        for sheet in book.iter(f"{MAIN}sheet")
        if sheet.get(REL_ID) in targets
    ]
    chosen = [s for s in sheets if s[0] == worksheet] if worksheet else sheets[:1]
    if not chosen:
        return Plan("no such worksheet")  # openpyxl names the sheets it has
    name, target = chosen[0]
    path = target.lstrip("/") if target.startswith("/") else posixpath.join("xl", target)
    reason, dates = _styles(archive)
    if reason:
        return Plan(reason, name)
    with archive.open(posixpath.normpath(path)) as xml:
        reason, width = _scan(xml)
    if not reason and "xl/sharedStrings.xml" in archive.namelist():
        with archive.open("xl/sharedStrings.xml") as xml:
            reason, _width = _scan(xml)
    return Plan(reason, name, width, dates)


def _scan(xml) -> tuple[str, int]:
    """Why the XML holds cells calamine reads otherwise ("" if none), and the declared width.
    Read in chunks, each cut before its last ``<``: every pattern lies within one tag (or
    just after one), so none is cut in two."""
    width = 0
    tail = b""
    previous = 0
    first = True
    while True:
        chunk = xml.read(CHUNK)
        text = tail + chunk
        cut = text.rfind(b"<") if chunk else len(text)
        body, tail = (text[:cut], text[cut:]) if cut > 0 else (text, b"")
        if first and (found := _DIMENSION.search(body, 0, 4096)):
            width = column_number((found.group(2) or found.group(1) or b"A").decode())
        first = False
        for needle, what in _ONLY_OPENPYXL:
            if needle in body:
                return f"the sheet has {what}", width
        if _BLANK_TEXT.search(body):
            return "text that is only spaces (or that starts with one)", width
        for number in map(int, _ROWS.findall(body)):
            if number <= previous:
                return "rows out of order", width
            previous = number
        if not chunk:
            return "", width


def _styles(archive: zipfile.ZipFile) -> tuple[str, bool]:
    """Why a number format of the workbook's cell styles may read otherwise in calamine (""
    if none), and whether one of them is a date or time format."""
    try:
        styles = ET.fromstring(archive.read("xl/styles.xml"))  # noqa: S314
    except KeyError:
        return "", False  # no styles: every cell General
    custom = {
        int(fmt.get("numFmtId", "-1")): fmt.get("formatCode", "")
        for fmt in styles.iter(f"{MAIN}numFmt")
    }
    xfs = styles.find(f"{MAIN}cellXfs")
    dates = False
    for xf in xfs if xfs is not None else ():
        number = int(xf.get("numFmtId", "0"))
        code = custom.get(number)
        if code is None:
            if number in DATE_FORMATS:
                dates = True
            elif number not in NUMBER_FORMATS:
                return f"a built-in number format calamine may read otherwise ({number})", dates
        elif set(code) == {"0"}:
            return f'a number format that keeps leading zeros ("{code}")', dates
        elif not _NUMBER.fullmatch(plain := _LITERALS.sub("", code)):
            if not _DATE.fullmatch(plain):
                return f'a number format calamine may read otherwise ("{code}")', dates
            dates = True
    return "", dates


def rows(location: str, sheet_plan: Plan) -> Iterator[tuple[int, list[str]]]:
    """(row number, cells as text) of every row of the sheet, as openpyxl's reader gives
    them (``sources.XlsxSource``): rows padded to the declared width, numbered as in the
    sheet. Raises ``Doubt`` at the first row whose text it cannot vouch for."""
    from python_calamine import CalamineWorkbook

    book = CalamineWorkbook.from_path(location)
    try:
        sheet = book.get_sheet_by_name(sheet_plan.sheet)
        start = sheet.start
        if start is None:
            return
        # NOTE: calamine's rows start at the sheet's first row, its columns at the first
        # column that holds a cell.
        pad = [""] * start[1]
        width = sheet_plan.width
        last = LAST_DATE if sheet_plan.dates else float("inf")
        for number, values in enumerate(sheet.iter_rows(), 1):
            if not any(values) and all(type(v) is str for v in values):  # FALSE, 0: values
                continue  # NOTE: openpyxl reads the rows the XML holds: an empty one is none
            cells = [v if type(v) is str else _text(number, v, last) for v in values]
            if pad:
                cells[:0] = pad
            if len(cells) < width:
                cells += [""] * (width - len(cells))
            yield number, cells
    finally:
        book.close()


def column_number(letters: str) -> int:
    """A -> 1, AA -> 27 (A1 notation)."""
    number = 0
    for letter in letters:
        number = number * 26 + ord(letter) - 64
    return number


def _text(number: int, value: object, last_date: float) -> str:
    """A cell as ``cell_text`` reads openpyxl's value, or ``Doubt`` where calamine's value
    may stand for another (tests/ingest/test_calamine.py shows each)."""
    if type(value) is float:
        if value.is_integer() and abs(value) >= BIG:
            raise Doubt(number, "an integer past 2**53")
        if value > last_date:
            raise Doubt(number, "a number past the last date in a workbook with dates")
        return cell_text(value)
    if isinstance(value, datetime.time | datetime.timedelta):
        # NOTE: calamine reads a negative serial in a date format as a time of day (openpyxl:
        # a date before 1900), and rounds durations otherwise.
        raise Doubt(number, "a time of day or a duration")
    if isinstance(value, datetime.datetime) and value.microsecond:
        raise Doubt(number, "a time with fractions of a second")
    return cell_text(value)

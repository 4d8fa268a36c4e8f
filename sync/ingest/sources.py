"""Where rows come from: CSV, XLSX and Google Sheets behind one small interface.

A source yields the header row and then ``(row_number, cells)`` for every data row, streaming
(memory stays flat for any size), with row numbers as a person sees them in the sheet (the
header is row 1). Cells are strings exactly as the sheet holds them; an empty row is skipped
but keeps its number. Network faults of Google Sheets are retried with exponential backoff
(``with_retries``); anything else that stops reading raises ``SourceUnavailableError``.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import datetime
import hashlib
import io
import itertools
import logging
import random
import re
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, TypeVar

from django.conf import settings

from sync.ingest.exceptions import SourceConfigError, SourceFileError, SourceUnavailableError

if TYPE_CHECKING:
    from sync.ingest.calamine import Plan
    from sync.ingest.source_definitions import SourceConfig
from sync.redaction import RedactPiiFilter

logger = logging.getLogger(__name__)
logger.addFilter(RedactPiiFilter())
T = TypeVar("T")
Row = tuple[int, list[str]]


class NetworkError(SourceUnavailableError):
    """A fault that may pass (connection refused, timeout, HTTP 429/5xx): retried."""


class Source(Protocol):
    kind: str
    location: str

    def prescan(self) -> object: ...

    def describe(self) -> dict: ...

    def headers(self) -> list[str]: ...

    def rows(self) -> Iterator[Row]: ...


def cell_text(value: Any) -> str:
    """A cell as the text a person reads in the sheet (numbers without a spurious ``.0``)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e16:
            return str(int(value))
        return format(Decimal(repr(value)), "f")
    if isinstance(value, datetime.datetime):
        return value.date().isoformat() if value.time() == datetime.time() else (value.isoformat())
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    return str(value)


def _data_rows(rows: Iterator[list[str]], first: int = 2) -> Iterator[Row]:
    for number, cells in enumerate(rows, start=first):
        if any(cells):
            yield number, cells


# NOTE: PostgreSQL's largest text value. csv's default field limit (131,072 characters)
# refused a long notes cell and with it the whole file; the limit is raised once, when a CSV
# is first read (not at import: other code may read the default).
FIELD_LIMIT = (1 << 30) - 1
DELIMITERS = (",", ";", "\t")  # in order of preference when the header does not decide
CHUNK = 1 << 20
UTF8 = "utf-8-sig"  # reads UTF-8 with or without a byte-order mark
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
# NOTE: a run of three or more accented letters is how text of another single-byte code
# page (Cyrillic, Greek …) looks when read as Windows-1252: no Western word has one.
_NOT_WESTERN = re.compile(
    "[\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u00ff\u0152\u0153\u0160\u0161\u0178\u017d\u017e]{3,}"
)


def normal_header(header: str) -> str:
    """A header as it is matched: without surrounding whitespace (and BOM), case ignored."""
    return header.replace("\ufeff", "").strip().casefold()


def match_headers(headers: list[str], expected: tuple[str, ...], location: str) -> list[str]:
    """The sheet's headers with each one that matches an expected header after trimming and
    ignoring case spelled as expected; two sheet columns matching the same one is an error
    (which of them would feed the field is a guess)."""
    if not expected:
        return headers
    exact = set(expected)
    wanted: dict[str, str] = {}
    for expected_name in expected:
        wanted.setdefault(normal_header(expected_name), expected_name)
    matched = list(headers)
    seen: dict[str, int] = {}
    for index, header in enumerate(headers):
        name = header if header in exact else wanted.get(normal_header(header))
        if name is None:
            continue
        if name in seen:
            first = seen[name]
            msg = (
                f"{location}: columns {column_letter(first + 1)} ({headers[first]!r}) and "
                f"{column_letter(index + 1)} ({header!r}) both read as {name!r}; "
                "rename or remove one of them"
            )
            raise SourceFileError(msg, code="ambiguous_header", line=1)
        seen[name] = index
        matched[index] = name
    return matched


def _looks_utf16(head: bytes) -> bool:
    """UTF-16 text without a byte-order mark: ASCII letters leave a NUL in every other byte.
    A stray NUL in a UTF-8 file is not that (it is reported with its row)."""
    sample = head[:4096]
    half = len(sample) // 2
    nuls = max(sample[0::2].count(0), sample[1::2].count(0))
    return half >= 2 and nuls >= half * 0.3


def _codec(name: str) -> str:
    """The codec's canonical name ("latin-1" -> "iso8859-1"); UTF-8 also strips a BOM."""
    canonical = codecs.lookup(name).name
    return "utf-8-sig" if canonical == "utf-8" else canonical


@dataclass
class FileText:
    """How a CSV file is decoded and split, decided once by reading it whole (the pre-scan)."""

    encoding: str
    delimiter: str
    warnings: list[str] = field(default_factory=list)
    detected: list[str] = field(default_factory=list)  # "encoding", "delimiter"

    def describe(self) -> dict:
        return {
            "encoding": self.encoding,
            "delimiter": self.delimiter,
            "detected": self.detected,
            "warnings": self.warnings,
        }


class CsvSource:
    """A CSV file, streamed. The encoding is the declared one or detected (BOM, UTF-8,
    then Windows-1252 when the text reads as such, said so in ``warnings``); the delimiter
    is the declared one or the one that splits the header into the expected columns.
    ``prescan`` decodes the whole file before a row is handed out: a file that cannot be
    decoded fails whole, naming the line, and nothing of it is loaded (DESIGN I10)."""

    kind = "csv"

    def __init__(
        self,
        location: str,
        *,
        encoding: str | None = "utf-8-sig",
        delimiter: str | None = ",",
        expected_headers: tuple[str, ...] = (),
    ) -> None:
        self.location = location
        self.encoding = encoding  # None: detect
        self.delimiter = delimiter  # None: sniff
        self.expected = tuple(expected_headers)
        self._text: FileText | None = None
        self.read_digest: bytes | None = None  # of the last whole read of ``rows``
        self._pending = False  # the whole file's decoding is still to be checked (prescan)

    def _binary(self):
        try:
            return Path(self.location).open("rb")
        except OSError as e:
            code = "missing" if isinstance(e, FileNotFoundError) else "unreadable"
            msg = f"cannot open {self.location}: {e.strerror}"
            raise SourceFileError(msg, code=code) from e

    def prescan(self, *, deferred: bool = False) -> FileText:
        """Decide the encoding and delimiter, decoding the whole file once (cheap: C codecs
        over 1 MiB chunks, no CSV parsing).

        ``deferred``: for a run, whose key pre-scan reads the whole file before its first
        batch anyway (``read_lines``), UTF-8 that cannot turn out to be anything else (a
        byte-order mark, declared, or detected with a header of plain ASCII) is checked by
        that read, not by one of its own (a tenth of the pre-scan's cost); anything that
        read cannot decode is then checked here in full, with the same outcome and message
        as ahead (``settle``). ``rows`` settles first."""
        if self._text is None:
            if csv.field_size_limit() < FIELD_LIMIT:
                csv.field_size_limit(FIELD_LIMIT)
            encoding, warnings, detected = self._encoding(deferred=deferred)
            text = FileText(encoding, ",", warnings, detected)
            text.delimiter = self._delimiter(text)
            self._text = text
        return self._text

    def describe(self) -> dict:
        return self.prescan().describe()

    def settle(self) -> None:
        """The whole file decoded now, if ``prescan(deferred=True)`` left that to a read that
        did not finish: the encoding error it finds, or the encoding it detects instead."""
        if self._pending:
            self._pending = False
            self._text = None
            self.prescan()

    def _encoding(self, *, deferred: bool = False) -> tuple[str, list[str], list[str]]:
        with self._binary() as handle:
            head = handle.read(4096)  # the byte-order mark, and enough to tell UTF-16 by NULs
        if not head:
            msg = f"{self.location}: the file is empty (0 bytes)"
            raise SourceFileError(msg, code="empty")
        declared = _codec(self.encoding) if self.encoding else None
        warnings: list[str] = []
        bom = (
            "utf-8-sig"
            if head.startswith(codecs.BOM_UTF8)
            else "utf-16"
            if head[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
            else None
        )
        if bom:
            if declared and declared != bom and not declared.startswith(bom[:6]):
                warnings.append(
                    f"the source declares {self.encoding} but the file starts "
                    f"with a {bom.removesuffix('-sig').upper()} byte-order mark: "
                    "read as that"
                )
            if deferred and bom == UTF8:
                self._pending = True
            else:
                self._check_decodes(bom)
            return bom, warnings, ([] if declared == bom else ["encoding"])
        if declared and declared.startswith("utf-") and declared != UTF8:
            self._check_decodes(declared)  # UTF-16/32 without a BOM: as declared
            return declared, warnings, []
        if declared is None and _looks_utf16(head):
            # NOTE: NUL bytes are valid UTF-8: read as that, UTF-16 without a byte-order mark
            # was a header of letters and NULs that no column matched.
            msg = (
                f"{self.location} looks like UTF-16 text without a byte-order mark (NUL "
                'bytes between its letters): declare encoding = "utf-16-le" (or '
                '"utf-16-be") in the source, or export it as CSV UTF-8; nothing of the '
                "file was loaded"
            )
            raise SourceFileError(msg, code="encoding", line=1)
        if deferred and (declared == UTF8 or (declared is None and _plain_header(head))):
            # NOTE: detected, the encoding may still turn out to be cp1252; a header of plain
            # ASCII reads the same in both, so the header and delimiter found stand.
            self._pending = True
            return UTF8, warnings, [] if declared else ["encoding"]
        utf8 = self._scan(UTF8)
        if utf8.error is None:
            if declared is None:
                return UTF8, warnings, ["encoding"]
            if declared != UTF8 and not utf8.ascii:
                # NOTE: text in a single-byte code page is almost never valid UTF-8 once it
                # has accents; read as declared, a UTF-8 export would be stored as mojibake.
                warnings.append(
                    f"the source declares {self.encoding} but the file is UTF-8 text: read as UTF-8"
                )
                return UTF8, warnings, ["encoding"]
            return declared, warnings, []
        if declared and declared != UTF8:
            self._check_decodes(declared)
            return declared, warnings, []
        if declared is None:
            cp1252 = self._scan("cp1252", western=True)
            if cp1252.error is None:
                warnings.append(
                    f"the file is not UTF-8 (line {self._line_of(utf8.error[0], 'cp1252')}); "
                    'read as Windows-1252 (cp1252), detected: declare encoding = "cp1252" '
                    "in the source if that is right"
                )
                return "cp1252", warnings, ["encoding"]
        raise self._undecodable(UTF8, utf8.error)

    def _check_decodes(self, encoding: str) -> None:
        scan = self._scan(encoding)
        if scan.error is not None:
            raise self._undecodable(encoding, scan.error)

    def _scan(self, encoding: str, *, western: bool = False) -> _Scan:
        """Decode the whole file; the first undecodable byte's position, if any."""
        decoder = codecs.getincrementaldecoder(encoding)("strict")
        skip_ascii = _ascii_compatible(encoding)
        offset = 0
        ascii_only = True
        tail = ""
        with self._binary() as handle:
            while True:
                chunk = handle.read(CHUNK)
                if skip_ascii and chunk and chunk.isascii() and not decoder.getstate()[0]:
                    offset += len(chunk)  # NOTE: nothing to decode: checked at C speed
                    continue
                try:
                    text = decoder.decode(chunk, final=not chunk)
                except UnicodeDecodeError as e:
                    # e.object is what the decoder held back from earlier chunks + this one.
                    at = offset - (len(e.object) - len(chunk)) + e.start
                    return _Scan((at, e.object[e.start : e.start + 1]), False)
                ascii_only = ascii_only and chunk.isascii()
                if western and not chunk.isascii():
                    if _NOT_WESTERN.search(tail + text):
                        return _Scan((offset, b""), False)
                    tail = text[-2:]
                if not chunk:
                    return _Scan(None, ascii_only)
                offset += len(chunk)

    def _line_of(self, position: int, encoding: str) -> int:
        """The line (1-based, as an editor numbers it) holding byte ``position``."""
        with self._binary() as handle:
            before = handle.read(position)
        return len(_LINE_BREAK.findall(before.decode(encoding, errors="replace"))) + 1

    def _undecodable(self, encoding: str, error: tuple[int, bytes]) -> SourceFileError:
        position, byte = error
        name = encoding.removesuffix("-sig").upper()
        line = self._line_of(position, encoding)
        what = f"byte 0x{byte.hex().upper()}" if byte else "a character"
        hint = (
            '; if it was saved as plain CSV on Windows, declare encoding = "cp1252" in the source'
            if name == "UTF-8"
            else ""
        )
        msg = (
            f"{self.location} is not {name} text: {what} at line {line} cannot be decoded; "
            f"nothing of the file was loaded{hint}"
        )
        return SourceFileError(msg, code="encoding", line=line)

    def _delimiter(self, text: FileText) -> str:
        if self.delimiter:
            return self.delimiter
        # NOTE: "replace": the header line is whole and decodes (prescan); a chunk read past
        # it may not (a deferred check: that is for the whole file's read to say).
        with Path(self.location).open(
            newline="", encoding=text.encoding, errors="replace"
        ) as handle:
            first = handle.readline()
        wanted = {normal_header(h) for h in self.expected}
        best, score = DELIMITERS[0], 0
        for delimiter in DELIMITERS:
            cells = next(csv.reader([first], delimiter=delimiter), [])
            found = len({normal_header(c) for c in cells} & wanted)
            if found > score:
                best, score = delimiter, found
        if best != DELIMITERS[0]:
            text.detected.append("delimiter")
        return best

    def _open(self):
        text = self.prescan()
        try:
            return Path(self.location).open(newline="", encoding=text.encoding)
        except OSError as e:  # pragma: no cover - it was readable a moment ago (prescan)
            msg = f"cannot open {self.location}: {e.strerror}"
            raise SourceFileError(msg, code="unreadable") from e

    def headers(self) -> list[str]:
        with self._open() as handle:
            try:
                raw = next(csv.reader(handle, delimiter=self.prescan().delimiter), [])
            except (UnicodeDecodeError, csv.Error) as e:  # the file changed since the prescan
                if self._pending:
                    # NOTE: a deferred check (prescan) says what it finds first: the
                    # encoding error, or the encoding detected instead; then read again.
                    self.settle()
                    return self.headers()
                msg = f"{self.location} cannot be read: its header row: {e}"
                raise SourceFileError(msg, code="unreadable", line=1) from e
        return match_headers(raw, self.expected, self.location)

    def rows(self) -> Iterator[Row]:
        """The data rows; once they are read to the end, ``read_digest`` is the digest of
        the bytes that read took them from (pipeline/keys.py compares two reads)."""
        self.settle()
        with self._reading() as (reader, header):
            yield from _data_rows_aligned(reader, header)

    def read_lines(self, consume: Callable[[Iterator[list[str]]], T]) -> T:
        """``consume(lines)``: the cells of every line after the header, as the csv module
        reads them (line ``n`` of ``lines`` is the sheet's row ``n + 2``; an empty line is
        ``[]``, a ragged line is not marked), for a pass that needs less than ``rows`` (the
        pre-scan's keys: no generator per row). Sets ``read_digest`` like ``rows``."""
        if self._pending:  # this read is the check of the whole file's decoding (prescan)
            try:
                with self._reading(tentative=True) as (reader, _header):
                    result = consume(reader)
            except _Undecided:
                self.settle()  # the encoding error, or the encoding detected; then read again
            else:
                self._pending = False
                return result
        with self._reading() as (reader, _header):
            return consume(reader)

    @contextlib.contextmanager
    def _reading(self, *, tentative: bool = False):
        text = self.prescan()
        if csv.field_size_limit() < FIELD_LIMIT:  # NOTE: the reader process's csv module too
            csv.field_size_limit(FIELD_LIMIT)
        try:
            raw = Path(self.location).open("rb", buffering=0)  # noqa: SIM115 - closed below
        except OSError as e:  # pragma: no cover - it was readable a moment ago (prescan)
            msg = f"cannot open {self.location}: {e.strerror}"
            raise SourceFileError(msg, code="unreadable") from e
        digesting = _Digesting(raw)
        with io.TextIOWrapper(
            io.BufferedReader(digesting, CHUNK), encoding=text.encoding, newline=""
        ) as handle:
            # NOTE: decoded 64 KiB at a time, not 8 KiB (CPython's attribute: no stub has it)
            handle._CHUNK_SIZE = 1 << 16  # type: ignore[attr-defined]
            # NOTE: strict: a quoted cell still open at the end of the file (a file cut off
            # mid-row) is an error, not a cell read as cut.
            reader = csv.reader(handle, delimiter=text.delimiter, strict=True)
            try:
                header = next(reader, [])
                yield reader, header
            except (UnicodeDecodeError, csv.Error) as e:  # the file changed since the prescan
                if tentative:
                    raise _Undecided from e
                msg = f"{self.location} cannot be read past line {reader.line_num}: {e}"
                if "unexpected end of data" in str(e):
                    msg += (
                        " (a quoted cell is not closed: the file was cut short?); nothing "
                        "of the file was loaded"
                    )
                raise SourceFileError(msg, code="unreadable", line=reader.line_num) from e
            self.read_digest = digesting.digest()


class _Undecided(Exception):  # noqa: N818 - control flow: a deferred check to finish
    pass


def _plain_header(head: bytes) -> bool:
    """The file's first line is whole in ``head``, plain ASCII and without quotes: it reads
    the same in UTF-8 and any code page the encoding could be detected as instead."""
    line, newline, _rest = head.partition(b"\n")
    return bool(newline) and line.isascii() and b'"' not in line


def _ascii_compatible(encoding: str) -> bool:
    """ASCII bytes read as themselves (UTF-8, cp1252, Latin-1; not UTF-16 or EBCDIC)."""
    ascii_bytes = bytes(range(128))
    return ascii_bytes.decode(encoding, errors="replace") == ascii_bytes.decode("ascii")


class _Scan(NamedTuple):
    error: tuple[int, bytes] | None  # (byte position, the byte)
    ascii: bool


class RaggedRow(list):
    """A CSV line whose cells do not line up with the header: fewer than its named columns
    (a file cut short, a line break outside quotes) or text past its last column (a delimiter
    in an unquoted value). Read as it was, it would store blanks or shifted values; validation
    reports it instead (``width``: the header's columns)."""

    width: int = 0


def _data_rows_aligned(rows: Iterator[list[str]], header: list[str]) -> Iterator[Row]:
    """``_data_rows`` of a CSV file's lines, each that does not line up with the header a
    ``RaggedRow``."""
    named = max((i + 1 for i, cell in enumerate(header) if cell.strip()), default=0)
    for number, cells in enumerate(rows, start=2):
        # NOTE: the usual line has the header's width: nothing more to look at.
        if len(cells) != named and (
            (0 < len(cells) < named and any(cells)) or any(c.strip() for c in cells[named:])
        ):
            cells = RaggedRow(cells)
            cells.width = named
        if any(cells):
            yield number, cells


class _Digesting(io.RawIOBase):
    """A file's bytes as they are read, folded into a digest (two reads of a file that
    changed in between differ)."""

    def __init__(self, raw) -> None:
        self._raw = raw
        self._hash = hashlib.sha256()  # NOTE: the fastest here (SHA extensions): 0.5 ms/MB
        self._size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int | None:
        read = self._raw.readinto(buffer)
        if read:
            self._hash.update(memoryview(buffer)[:read])
            self._size += read
        return read

    def close(self) -> None:
        self._raw.close()
        super().close()

    def digest(self) -> bytes:
        return self._hash.digest() + self._size.to_bytes(8, "little")


class FormulaRow(list):
    """A row of cells in which some formulas have no value saved with the workbook
    (``formulas``: their 0-based positions; their cells read ""). A workbook written by a
    program that does not compute formulas (openpyxl itself, many exports) has none: the
    value a person sees in Excel is not in the file, and an empty cell is not it."""

    formulas: tuple[int, ...] = ()


def _magic(location: str) -> bytes:
    try:
        with Path(location).open("rb") as handle:
            return handle.read(8)
    except OSError as e:
        code = "missing" if isinstance(e, FileNotFoundError) else "unreadable"
        msg = f"cannot open {location}: {e.strerror}"
        raise SourceFileError(msg, code=code) from e


def _not_a_workbook(location: str, head: bytes) -> str:
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        what = "it is an Excel 97-2003 .xls file; save it as .xlsx"
    elif head.isascii() or head.startswith((codecs.BOM_UTF8, codecs.BOM_UTF16_LE)):
        what = "it holds text (a CSV file renamed .xlsx?)"
    else:
        what = "it is not a zip archive, as every .xlsx workbook is"
    return f"{location} is not an .xlsx workbook: {what}"


class XlsxSource:
    """A workbook's sheet, read by python-calamine where it reads what openpyxl reads, by
    openpyxl otherwise (``reader``: "auto"; "openpyxl" always; ingest/calamine.py says when).

    openpyxl reads in read-only mode: rows stream from the zip, the workbook is never loaded.
    Cells are read with the values saved with the workbook (``data_only``); a formula that
    has none is marked (``FormulaRow``), never read as an empty cell."""

    kind = "xlsx"

    def __init__(
        self,
        location: str,
        *,
        worksheet: str = "",
        expected_headers: tuple[str, ...] = (),
        reader: str = "auto",
    ) -> None:
        self.location = location
        self.worksheet = worksheet
        self.expected = tuple(expected_headers)
        self.reader = reader
        self.read_by = ""  # the reader of the last read, and why not calamine (describe)
        self._plan: Plan | None = None
        # The header's read, left at its second row (``headers``), which ``rows`` goes on with.
        self._rest: tuple[Row, Generator[Row, None, None]] | None = None

    def _sheet(self):
        import openpyxl

        head = _magic(self.location)
        if not head:
            msg = f"{self.location}: the file is empty (0 bytes)"
            raise SourceFileError(msg, code="empty")
        if not head.startswith(b"PK"):
            raise SourceFileError(_not_a_workbook(self.location, head), code="not_a_workbook")
        try:
            book = openpyxl.load_workbook(self.location, read_only=True, data_only=True)
        except Exception as e:
            # NOTE: a damaged file fails deep in zipfile/zlib/XML/openpyxl with whatever
            # they raise (BadZipFile, zlib.error, EOFError, ParseError, KeyError, TypeError…,
            # found by tests/fuzz/test_xlsx.py): all of them mean the same to the operator.
            msg = f"cannot open {self.location} as an .xlsx workbook: {_reason(e)}"
            raise SourceFileError(msg, code="not_a_workbook") from e
        if self.worksheet and self.worksheet not in book.sheetnames:
            book.close()
            msg = (
                f"{self.location} has no worksheet {self.worksheet!r} "
                f"(it has {', '.join(book.sheetnames)})"
            )
            raise SourceConfigError(msg)
        return book, book[self.worksheet] if self.worksheet else book.worksheets[0]

    def prescan(self) -> None:
        """Nothing ahead of ``headers``, which opens the workbook (and says so when the file is
        not one). Damage past the first rows surfaces while reading them, and a run reads
        every row once before its first batch (its key pre-scan, pipeline/run.py): a
        second pass here would cost as much again (openpyxl, ~15% more for an XML check)."""

    def describe(self) -> dict:
        described = {"worksheet": self.worksheet or "(the first)"}
        return {**described, "reader": self.read_by} if self.read_by else described

    def _calamine_plan(self) -> Plan | None:
        """calamine's plan for the sheet (ingest/calamine.py), or None: openpyxl reads it
        (by the setting, or because it is what reports a file that is not a workbook)."""
        if self.reader != "auto":
            self.read_by = "openpyxl (SYNC_INGEST_XLSX_READER)"
            return None
        if self._plan is None:
            from sync.ingest import calamine

            head = _magic(self.location)
            if not head.startswith(b"PK"):
                return None  # openpyxl's path says what the file is instead
            self._plan = calamine.plan(self.location, self.worksheet)
            if self._plan.reason:
                logger.info("%s: read with openpyxl: %s", self.location, self._plan.reason)
        self.read_by = f"openpyxl: {self._plan.reason}" if self._plan.reason else "python-calamine"
        return None if self._plan.reason else self._plan

    def _read(self) -> Generator[tuple[int, list[str]], None, None]:
        """(row number, cells) of every row, by calamine while it can vouch for them, then
        (or from the start) by openpyxl."""
        last = 0
        sheet_plan = self._calamine_plan()
        if sheet_plan is not None:
            from sync.ingest import calamine

            try:
                for number, cells in calamine.rows(self.location, sheet_plan):
                    yield number, cells
                    last = number
                return
            except calamine.Doubt as e:
                self.read_by = f"python-calamine to row {last}, openpyxl from row {e.row}: {e}"
                logger.info("%s: %s", self.location, self.read_by)
            except Exception as e:  # noqa: BLE001 - openpyxl reads it and says what is wrong
                self.read_by = f"openpyxl: python-calamine failed ({_reason(e)})"
                logger.info("%s: %s", self.location, self.read_by)
        book, sheet = self._sheet()
        try:
            for number, cells in self._cells(book, sheet):
                if number > last:
                    yield number, cells
        finally:
            book.close()

    def _cells(self, book, sheet) -> Iterator[tuple[int, list[str]]]:
        """(row number, cells) of every row the sheet's XML holds, in order. Rows are not
        cut at the sheet's declared dimensions (some writers declare A1:A1)."""
        number = 0
        try:
            with sheet._get_source() as stream:
                # NOTE: the sheet's shared strings: the workbook's own list is empty when it is
                # read only (every workbook Excel saves has shared strings).
                parser = _formula_parser()(
                    stream,
                    sheet._shared_strings,
                    data_only=True,
                    epoch=book.epoch,
                    date_formats=book._date_formats,
                    timedelta_formats=book._timedelta_formats,
                )
                parser.zero_padded = _zero_padded(book)
                last = 0
                # NOTE: rows as wide as the sheet's declared columns, as openpyxl's own
                # iter_rows gives them (a CSV export keeps its trailing empty cells too).
                width = sheet.max_column if isinstance(sheet.max_column, int) else 0
                for number, cells in parser.parse():
                    if number <= last:
                        # NOTE: openpyxl skips such a row without a word; it is damage.
                        msg = f"row {number} follows row {last}: the sheet is damaged"
                        raise ValueError(msg)
                    last = number
                    yield number, _values(cells, width)
        except Exception as e:
            # Read-only mode streams from the zip: damage past the first rows surfaces here.
            msg = f"{self.location} cannot be read past row {number}: {_reason(e)}"
            raise SourceFileError(msg, code="unreadable") from e

    def headers(self) -> list[str]:
        self._forget_read()
        read = self._read()
        kept = False
        try:
            first = next(read, None)
            raw = first[1] if first is not None and first[0] == 1 else []
            headers = match_headers(raw, self.expected, self.location)
            if first is not None and self.read_by == "python-calamine":
                # NOTE: calamine parses the whole sheet before it gives its first row (the
                # header): the next ``rows`` goes on with this read instead of parsing the
                # sheet again (a run reads every row right after its header). openpyxl
                # streams: its first row costs little, its read is not kept.
                self._rest, kept = (first, read), True
            return headers
        finally:
            if not kept:
                read.close()

    def _forget_read(self) -> None:
        if self._rest is not None:
            self._rest[1].close()
            self._rest = None

    def rows(self) -> Iterator[Row]:
        read: Iterator[Row]
        if self._rest is not None:
            (first, rest), self._rest = self._rest, None
            read = itertools.chain([first], rest)
        else:
            rest = self._read()
            read = rest
        try:
            for number, cells in read:
                if number > 1 and (any(cells) or type(cells) is FormulaRow):
                    yield number, cells
        finally:
            rest.close()


_UNCOMPUTED = object()
_parser_class: list = []


def _values(cells: list[dict], width: int) -> list[str]:
    """A parsed row's cells as text, by column (a gap is an empty cell)."""
    if not cells:
        return [""] * width
    values = [""] * max(width, *(cell["column"] for cell in cells))
    formulas = []
    for cell in cells:
        value = cell["value"]
        if value is _UNCOMPUTED:
            formulas.append(cell["column"] - 1)
        elif value is not None:
            values[cell["column"] - 1] = cell_text(value)
    if not formulas:
        return values
    marked = FormulaRow(values)
    marked.formulas = tuple(formulas)
    return marked


def _zero_padded(book) -> dict[int, int]:
    """Cell styles whose number format is only zeros ("00000": codes, zip codes), with the
    digits it shows."""
    formats = list(book._number_formats)
    padded = {}
    for style_id, style in enumerate(book._cell_styles):
        number = style.numFmtId - 164  # custom formats; no built-in one pads
        if (
            0 <= number < len(formats)
            and len(formats[number]) > 1
            and (set(formats[number]) == {"0"})
        ):
            padded[style_id] = len(formats[number])
    return padded


def _formula_parser():
    """openpyxl's sheet parser, telling a formula without a saved value from an empty cell
    (in ``data_only`` mode both read as None). Built on first use: openpyxl loads late."""
    if not _parser_class:
        from openpyxl.worksheet._reader import FORMULA_TAG, VALUE_TAG, WorkSheetParser

        class FormulaParser(WorkSheetParser):
            zero_padded: dict[int, int] = {}  # set for each sheet: style id -> digits shown

            def parse_cell(self, element):
                cell = super().parse_cell(element)
                pad = self.zero_padded.get(cell["style_id"])
                if pad and type(cell["value"]) is int and cell["value"] >= 0:
                    # NOTE: a number formatted "00000" shows (and exports) as 00123: read
                    # as 123, a code with leading zeros was stored without them.
                    cell["value"] = str(cell["value"]).zfill(pad)
                if cell["value"] is None and element.find(FORMULA_TAG) is not None:
                    # NOTE: t="str" with a <v> is a formula whose result is the empty string
                    # (Excel writes <v></v>); no <v>, or an empty number, is no result saved.
                    computed = element.get("t") == "str" and element.find(VALUE_TAG) is not None
                    cell["value"] = "" if computed else _UNCOMPUTED
                return cell

        _parser_class.append(FormulaParser)
    return _parser_class[0]


def _reason(error: Exception) -> str:
    """An error of a library reading a file, in one line (its type when it says nothing)."""
    text = " ".join(str(error).split())[:300]
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def backoff_delay(attempt: int, base: float) -> float:
    """Exponential backoff with jitter: base · 2^attempt, times 0.5 to 1."""
    return base * (2**attempt) * (0.5 + random.random() / 2)  # noqa: S311


def with_retries(
    operation: Callable[[], T],
    *,
    what: str,
    on_retry: Callable[[int, Exception, float], None] | None = None,
) -> T:
    """``operation()``, retried on ``NetworkError`` up to SYNC_INGEST_NETWORK_RETRIES times."""
    retries = settings.SYNC_INGEST_NETWORK_RETRIES
    for attempt in range(retries + 1):
        try:
            return operation()
        except NetworkError as e:
            if attempt == retries:
                msg = f"{what}: still failing after {retries} retries: {e}"
                raise SourceUnavailableError(msg) from e
            delay = backoff_delay(attempt, settings.SYNC_INGEST_NETWORK_BACKOFF)
            logger.warning(
                "%s failed (%s); retry %d/%d in %.2fs", what, e, attempt + 1, retries, delay
            )
            if on_retry:
                on_retry(attempt + 1, e, delay)
            time.sleep(delay)
    raise AssertionError  # pragma: no cover - the loop returns or raises


def column_letter(index: int) -> str:
    """1 -> A, 27 -> AA (A1 notation)."""
    letters = ""
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


class SheetsSource:
    """Google Sheets through gspread (the ``sheets`` extra), read in chunks of rows.

    The endpoint is ``SYNC_INGEST_SHEETS_API_URL`` (a proxy, or the local server the tests
    run); credentials are a service-account file or, for public sheets, an API key.
    """

    kind = "sheets"

    def __init__(
        self,
        spreadsheet_id: str,
        *,
        worksheet: str = "",
        expected_headers: tuple[str, ...] = (),
        on_retry: Callable[[int, Exception, float], None] | None = None,
    ) -> None:
        self.location = spreadsheet_id
        self.worksheet = worksheet
        self.expected = tuple(expected_headers)
        self.on_retry = on_retry
        self._client = None

    def client(self):
        if self._client is None:
            self._client = sheets_client()
        return self._client

    def _range(self, first: int, last: int) -> str:
        cells = f"{first}:{last}"  # whole rows, every column
        return f"'{self.worksheet}'!{cells}" if self.worksheet else cells

    def fetch(self, first: int, last: int) -> list[list[str]]:
        """Rows ``first``..``last`` (1-based, inclusive), retried on network faults."""
        import gspread
        import requests

        params = {"valueRenderOption": "FORMATTED_VALUE", "majorDimension": "ROWS"}
        if settings.SYNC_INGEST_SHEETS_API_KEY:
            params["key"] = settings.SYNC_INGEST_SHEETS_API_KEY

        def get() -> list[list[str]]:
            try:
                body = self.client().values_get(
                    self.location, self._range(first, last), params=params
                )
            except gspread.exceptions.APIError as e:
                if e.code == 429 or e.code >= 500 or e.code == -1:
                    msg = f"Google Sheets answered HTTP {e.response.status_code}"
                    raise NetworkError(msg) from e
                msg = (
                    f"Google Sheets refused {self.location}: HTTP {e.code} {e.error.get('status')}"
                )
                raise SourceFileError(msg, code="refused") from e
            except requests.RequestException as e:
                msg = f"cannot reach Google Sheets: {type(e).__name__}"
                raise NetworkError(msg) from e
            return [[cell_text(v) for v in row] for row in body.get("values", [])]

        return with_retries(
            get, what=f"reading rows {first}-{last} of {self.location}", on_retry=self.on_retry
        )

    def prescan(self) -> None:
        """Nothing to do ahead: the sheet is read by the API, in chunks."""

    def describe(self) -> dict:
        return {"worksheet": self.worksheet or "(the first)"}

    def headers(self) -> list[str]:
        rows = self.fetch(1, 1)
        return match_headers(rows[0] if rows else [], self.expected, self.location)

    def rows(self) -> Iterator[Row]:
        chunk = settings.SYNC_INGEST_SHEETS_CHUNK_ROWS
        first = 2
        while True:
            values = self.fetch(first, first + chunk - 1)
            yield from _data_rows(iter(values), first)
            if len(values) < chunk:
                return
            first += chunk


def sheets_client():
    """gspread's HTTP client on the configured endpoint and credentials."""
    try:
        from gspread.http_client import HTTPClient
    except ImportError as e:  # pragma: no cover - the sheets extra is installed in tests
        msg = "Google Sheets sources need the sheets extra: pip install -e '.[sheets]'"
        raise SourceConfigError(msg) from e
    import requests

    google = "https://sheets.googleapis.com/v4/spreadsheets"
    endpoint = settings.SYNC_INGEST_SHEETS_API_URL.rstrip("/")

    class Client(HTTPClient):
        # Forwards whatever gspread passes, only the URL rewritten.
        def request(self, method, url, *args, **kwargs):  # type: ignore[override]
            return super().request(method, endpoint + url.removeprefix(google), *args, **kwargs)

    credentials = settings.SYNC_INGEST_SHEETS_CREDENTIALS
    if credentials:
        from google.oauth2.service_account import Credentials

        auth = Credentials.from_service_account_file(
            credentials, scopes=["https://www.googleapis.com/auth/spreadsheets.readonly"]
        )
        client = Client(auth)
    else:
        # An API key or an open endpoint: gspread sends no credentials when it has None.
        client = Client(None, session=requests.Session())  # type: ignore[arg-type]
    client.set_timeout(settings.SYNC_INGEST_SHEETS_TIMEOUT)
    return client


def open_source(
    kind: str,
    location: str,
    *,
    worksheet: str = "",
    encoding: str | None = None,
    delimiter: str | None = None,
    expected_headers: tuple[str, ...] = (),
    on_retry: Callable[[int, Exception, float], None] | None = None,
) -> Source:
    """A source; ``expected_headers`` (the mapping's) are matched after trimming and ignoring
    case, and pick the CSV delimiter when none is given; ``encoding`` None: detected."""
    if kind == "csv":
        return CsvSource(
            location, encoding=encoding, delimiter=delimiter, expected_headers=expected_headers
        )
    if kind == "xlsx":
        return XlsxSource(
            location,
            worksheet=worksheet,
            expected_headers=expected_headers,
            reader=settings.SYNC_INGEST_XLSX_READER,
        )
    return SheetsSource(
        location, worksheet=worksheet, expected_headers=expected_headers, on_retry=on_retry
    )


def source_for(
    config: SourceConfig,
    kind: str,
    location: str,
    on_retry: Callable[[int, Exception, float], None] | None = None,
) -> Source:
    """The source a run (or a check) of ``config`` reads, with its declared file format."""
    # NOTE: the declared format is in both the config's fields and its reader options.
    declared = {
        **config.options,
        **{k: v for k in ("encoding", "delimiter") if (v := getattr(config, k, ""))},
    }
    return open_source(
        kind,
        location,
        worksheet=config.worksheet,
        encoding=declared.get("encoding") or None,
        delimiter=declared.get("delimiter") or None,
        expected_headers=tuple(config.columns),
        on_retry=on_retry,
    )

"""Where rows come from: CSV, XLSX and Google Sheets behind one small interface.

A source yields the header row and then ``(row_number, cells)`` for every data row, streaming
(memory stays flat for any size), with row numbers as a person sees them in the sheet (the
header is row 1). Cells are strings exactly as the sheet holds them; an empty row is skipped
but keeps its number. Network faults of Google Sheets are retried with exponential backoff
(``with_retries``); anything else that stops reading raises ``SourceUnavailableError``.
"""

from __future__ import annotations

import csv
import datetime
import logging
import random
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol, TypeVar

from django.conf import settings

from sync.ingest.exceptions import SourceConfigError, SourceUnavailableError
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

    def headers(self) -> list[str]: ...

    def rows(self) -> Iterator[Row]: ...

    def estimate_rows(self) -> int | None: ...


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
        return value.date().isoformat() if value.time() == datetime.time() else (
            value.isoformat())
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    return str(value)


def _data_rows(rows: Iterator[list[str]], first: int = 2) -> Iterator[Row]:
    for number, cells in enumerate(rows, start=first):
        if any(cells):
            yield number, cells


class CsvSource:
    kind = "csv"

    def __init__(self, location: str, *, encoding: str = "utf-8-sig", delimiter: str = ",",
                 ) -> None:
        self.location = location
        self.encoding = encoding
        self.delimiter = delimiter

    def _open(self):
        try:
            return Path(self.location).open(newline="", encoding=self.encoding)
        except OSError as e:
            msg = f"cannot open {self.location}: {e.strerror}"
            raise SourceUnavailableError(msg) from e

    def headers(self) -> list[str]:
        with self._open() as handle:
            try:
                return next(csv.reader(handle, delimiter=self.delimiter), [])
            except UnicodeDecodeError as e:
                msg = f"{self.location} is not {self.encoding} text: {e.reason}"
                raise SourceUnavailableError(msg) from e
            except csv.Error as e:  # e.g. a header cell longer than csv's field limit
                msg = f"{self.location} cannot be read: its header row: {e}"
                raise SourceUnavailableError(msg) from e

    def rows(self) -> Iterator[Row]:
        with self._open() as handle:
            reader = csv.reader(handle, delimiter=self.delimiter)
            try:
                next(reader, None)
                yield from _data_rows(reader)
            except (UnicodeDecodeError, csv.Error) as e:
                msg = f"{self.location} cannot be read past line {reader.line_num}: {e}"
                raise SourceUnavailableError(msg) from e

    def estimate_rows(self) -> int | None:
        lines = 0
        with Path(self.location).open("rb") as handle:
            while chunk := handle.read(1 << 20):
                lines += chunk.count(b"\n")
        return max(lines - 1, 0)


class XlsxSource:
    """openpyxl in read-only mode: rows stream from the zip, the workbook is never loaded."""

    kind = "xlsx"

    def __init__(self, location: str, *, worksheet: str = "") -> None:
        self.location = location
        self.worksheet = worksheet

    def _sheet(self):
        import openpyxl

        try:
            book = openpyxl.load_workbook(self.location, read_only=True, data_only=True)
        except Exception as e:
            # NOTE: a damaged file fails deep in zipfile/zlib/XML/openpyxl with whatever
            # they raise (BadZipFile, zlib.error, EOFError, ParseError, KeyError, TypeError…,
            # found by tests/fuzz/test_xlsx.py): all of them mean the same to the operator.
            msg = f"cannot open {self.location} as an .xlsx workbook: {_reason(e)}"
            raise SourceUnavailableError(msg) from e
        if self.worksheet and self.worksheet not in book.sheetnames:
            book.close()
            msg = (f"{self.location} has no worksheet {self.worksheet!r} "
                   f"(it has {', '.join(book.sheetnames)})")
            raise SourceConfigError(msg)
        return book, book[self.worksheet] if self.worksheet else book.worksheets[0]

    def _cells(self, sheet) -> Iterator[list[str]]:
        # Read-only mode streams from the zip: damage past the first rows surfaces here.
        values = sheet.iter_rows(values_only=True)
        number = 0
        while True:
            try:
                row = next(values, None)
            except Exception as e:
                msg = (f"{self.location} cannot be read past row {number}: {_reason(e)}")
                raise SourceUnavailableError(msg) from e
            if row is None:
                return
            number += 1
            yield [cell_text(v) for v in row]

    def headers(self) -> list[str]:
        book, sheet = self._sheet()
        try:
            return next(self._cells(sheet), [])
        finally:
            book.close()

    def rows(self) -> Iterator[Row]:
        book, sheet = self._sheet()
        try:
            cells = self._cells(sheet)
            next(cells, None)
            yield from _data_rows(cells)
        finally:
            book.close()

    def estimate_rows(self) -> int | None:
        book, sheet = self._sheet()
        try:
            return max((sheet.max_row or 1) - 1, 0)
        finally:
            book.close()


def _reason(error: Exception) -> str:
    """An error of a library reading a file, in one line (its type when it says nothing)."""
    text = " ".join(str(error).split())[:300]
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def backoff_delay(attempt: int, base: float) -> float:
    """Exponential backoff with jitter: base · 2^attempt, times 0.5 to 1."""
    return base * (2 ** attempt) * (0.5 + random.random() / 2)  # noqa: S311


def with_retries(operation: Callable[[], T], *, what: str,
                 on_retry: Callable[[int, Exception, float], None] | None = None) -> T:
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
            logger.warning("%s failed (%s); retry %d/%d in %.2fs", what, e, attempt + 1,
                           retries, delay)
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

    def __init__(self, spreadsheet_id: str, *, worksheet: str = "",
                 on_retry: Callable[[int, Exception, float], None] | None = None) -> None:
        self.location = spreadsheet_id
        self.worksheet = worksheet
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
                body = self.client().values_get(self.location, self._range(first, last),
                                                params=params)
            except gspread.exceptions.APIError as e:
                if e.code == 429 or e.code >= 500 or e.code == -1:
                    msg = f"Google Sheets answered HTTP {e.response.status_code}"
                    raise NetworkError(msg) from e
                msg = (f"Google Sheets refused {self.location}: "
                       f"HTTP {e.code} {e.error.get('status')}")
                raise SourceUnavailableError(msg) from e
            except requests.RequestException as e:
                msg = f"cannot reach Google Sheets: {type(e).__name__}"
                raise NetworkError(msg) from e
            return [[cell_text(v) for v in row] for row in body.get("values", [])]

        return with_retries(get, what=f"reading rows {first}-{last} of {self.location}",
                            on_retry=self.on_retry)

    def headers(self) -> list[str]:
        rows = self.fetch(1, 1)
        return rows[0] if rows else []

    def rows(self) -> Iterator[Row]:
        chunk = settings.SYNC_INGEST_SHEETS_CHUNK_ROWS
        first = 2
        while True:
            values = self.fetch(first, first + chunk - 1)
            yield from _data_rows(iter(values), first)
            if len(values) < chunk:
                return
            first += chunk

    def estimate_rows(self) -> int | None:
        return None


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
        def request(self, method, url, *args, **kwargs):
            return super().request(method, endpoint + url.removeprefix(google), *args,
                                   **kwargs)

    credentials = settings.SYNC_INGEST_SHEETS_CREDENTIALS
    if credentials:
        from google.oauth2.service_account import Credentials

        auth = Credentials.from_service_account_file(
            credentials, scopes=["https://www.googleapis.com/auth/spreadsheets.readonly"])
        client = Client(auth)
    else:
        client = Client(None, session=requests.Session())  # API key or an open endpoint
    client.set_timeout(settings.SYNC_INGEST_SHEETS_TIMEOUT)
    return client


def open_source(kind: str, location: str, *, worksheet: str = "",
                on_retry: Callable[[int, Exception, float], None] | None = None) -> Source:
    if kind == "csv":
        return CsvSource(location)
    if kind == "xlsx":
        return XlsxSource(location, worksheet=worksheet)
    return SheetsSource(location, worksheet=worksheet, on_retry=on_retry)

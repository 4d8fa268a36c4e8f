"""``redact`` and the ``RedactPiiFilter`` logging filter (DESIGN I6).

Applied to every log record the product emits (ours, Django's, Celery's, the ASGI server's
access lines) and to error text stored in tables: e-mail addresses, phone numbers, card-like
digit runs and IBANs are replaced by a marker; so are the values of a URL's query string (an
admin search for a person's name has no pattern to match), and URL-encoded text is decoded
before it is matched (``%40``, ``%2B1+555…``). UUIDs (Celery task ids) and IPv4 addresses stay
whole, and so do dates and times: their digit runs are not phone numbers.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import unquote_plus

_PATTERNS = [
    # PostgreSQL error details quote whole rows and key values.
    (re.compile(r"(Failing row contains) \(.*?\)(?=\.?\s*$|\.\s|\n)", re.M), r"\1 ([row])"),
    (
        re.compile(
            r"(Key \([^)]*\))=\(.*?\)( already exists| is (?:still )?(?:not present|"
            r"referenced))"
        ),
        r"\1=([value])\2",
    ),
    # NOTE: starts only where a run of name characters starts: from every position inside a
    # long run the scan to its end made a 100k-character cell quadratic (minutes).
    (re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+"), "[email]"),
    (re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b"), "[iban]"),
    (re.compile(r"\b(?:\d[ -]?){13,19}\b"), "[card]"),
    (re.compile(r"(?<![\w.])\+?\d[\d ().-]{6,}\d\b"), "[phone]"),
]
# Kept whole: set aside before the patterns run, put back after.
_KEPT = re.compile(
    r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"
    r"|\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)\b(?!\.\d)"
    # Dates and times (ISO 8601 and the log's own "2026-12-06 23:55:13,104"): a date followed
    # by an hour read as a phone number, and every time on a page or in a log became [phone].
    r"|\b\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2}(?::\d{2}(?:[.,]\d{1,9})?)?"
    r"(?:Z|[+-]\d{2}:?\d{2})?)?(?![\d-])"
)
_KEPT_MARK = "\x00kept{}\x00"  # a NUL cannot come from the text: replaced below first
# A path or URL with a query string: its values go, its parameter names stay.
_QUERY = re.compile(
    r"(?P<path>(?:\b[a-z][a-z0-9+.-]*://[^\s/?#\"']*)?/[^\s?#\"']*)"
    r"\?(?P<query>[^\s#\"']*)"
)
_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")
QUERY_VALUE = "[redacted]"


def _query_names(match: re.Match[str]) -> str:
    names = [part.split("=", 1)[0] for part in re.split(r"[&;]", match["query"]) if part]
    return match["path"] + "?" + "&".join(f"{name}={QUERY_VALUE}" for name in names)


def _patterns(text: str) -> str:
    kept: list[str] = []

    def keep(match: re.Match[str]) -> str:
        kept.append(match.group())
        return _KEPT_MARK.format(len(kept) - 1)

    text = _KEPT.sub(keep, text)
    for pattern, marker in _PATTERNS:
        text = pattern.sub(marker, text)
    for index, original in enumerate(kept):
        text = text.replace(_KEPT_MARK.format(index), original)
    return text


# A line longer than this is cut (at a space, so no value is cut in half and left
# unrecognisable) before the patterns run: each pattern may try every position of a line.
LINE_LIMIT = 4000


def _bounded(text: str) -> str:
    lines = text.split("\n")
    for index, line in enumerate(lines):
        if len(line) > LINE_LIMIT:
            cut = line.rfind(" ", 0, LINE_LIMIT + 1)
            lines[index] = f"{line[: max(cut, 0)]} [{len(line) - max(cut, 0):,} characters cut]"
    return "\n".join(lines)


def redact(text: str, values: tuple[str, ...] | list[str] = ()) -> str:
    """``text`` without PII: known patterns, query values, and any of ``values`` (e.g. a
    row's PII fields). A line longer than ``LINE_LIMIT`` characters is cut."""
    # NOTE: redacted text is stored (run messages, error reasons): a NUL from a sheet's cell
    # or header would make PostgreSQL refuse the row that reports the problem.
    text = text.replace("\x00", "\ufffd")
    if len(text) > LINE_LIMIT:
        text = _bounded(text)
    for value in sorted((v for v in values if v and len(v) > 1), key=len, reverse=True):
        text = text.replace(value, "[pii]")
    text = _QUERY.sub(_query_names, text)
    if _PERCENT.search(text):
        decoded = _bounded(unquote_plus(text).replace("\x00", "\ufffd"))
        for value in (v for v in values if v and len(v) > 1):
            decoded = decoded.replace(value, "[pii]")
        if _patterns(decoded) != decoded or decoded.count("[pii]") > text.count("[pii]"):
            text = decoded  # PII hid behind %-escapes: the log shows the decoded, redacted text
    return _patterns(text)


def _redact_argument(value: object) -> object:
    return redact(value) if isinstance(value, str) else value


class RedactPiiFilter(logging.Filter):
    """Rewrites a record's arguments, its message and its traceback through ``redact``.

    String arguments are redacted one by one first, so a formatter that reads ``args`` (the
    ASGI server's access formatter) still gets its tuple; if the merged message still holds
    something to redact, the record carries the redacted message without arguments.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_redact_argument(arg) for arg in record.args)
        message = record.getMessage()
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True

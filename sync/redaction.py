"""``redact`` and the ``RedactPiiFilter`` logging filter (DESIGN I6).

Applied to every sync logger and to error text stored in tables: e-mail addresses, phone
numbers, card-like digit runs and IBANs are replaced by a marker.
"""

from __future__ import annotations

import logging
import re

_PATTERNS = [
    # PostgreSQL error details quote whole rows and key values.
    (re.compile(r"(Failing row contains) \(.*?\)(?=\.?\s*$|\.\s|\n)", re.M), r"\1 ([row])"),
    (re.compile(r"(Key \([^)]*\))=\(.*?\)( already exists| is (?:still )?(?:not present|"
                r"referenced))"), r"\1=([value])\2"),
    (re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"), "[email]"),
    (re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b"), "[iban]"),
    (re.compile(r"\b(?:\d[ -]?){13,19}\b"), "[card]"),
    (re.compile(r"(?<![\w.])\+?\d[\d ().-]{6,}\d\b"), "[phone]"),
]


def redact(text: str, values: tuple[str, ...] | list[str] = ()) -> str:
    """``text`` without PII: known patterns, and any of ``values`` (e.g. a row's PII fields)."""
    for value in sorted((v for v in values if v and len(v) > 1), key=len, reverse=True):
        text = text.replace(value, "[pii]")
    for pattern, marker in _PATTERNS:
        text = pattern.sub(marker, text)
    # NOTE: redacted text is stored (run messages, error reasons): a NUL from a sheet's cell
    # or header would make PostgreSQL refuse the row that reports the problem.
    return text.replace("\x00", "\ufffd")


class RedactPiiFilter(logging.Filter):
    """Rewrites a record's message (arguments merged in) and its traceback through ``redact``."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True

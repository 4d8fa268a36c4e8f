"""``redact`` and the ``RedactPiiFilter`` logging filter (DESIGN I6).

Applied to every sync logger and to error text stored in tables: e-mail addresses, phone
numbers, card-like digit runs and IBANs are replaced by a marker.
"""

from __future__ import annotations

import logging
import re

_PATTERNS = [
    (re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"), "[email]"),
    (re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b"), "[iban]"),
    (re.compile(r"\b(?:\d[ -]?){13,19}\b"), "[card]"),
    (re.compile(r"(?<![\w.])\+?\d[\d ().-]{6,}\d\b"), "[phone]"),
]


def redact(text: str) -> str:
    for pattern, marker in _PATTERNS:
        text = pattern.sub(marker, text)
    return text


class RedactPiiFilter(logging.Filter):
    """Rewrites a record's message (with its arguments merged in) through ``redact``."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True

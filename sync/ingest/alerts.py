"""Alerts of ingestion, for now a logged line each (issue 5 turns them into ``sync_alerts``
rows with e-mail); every caller already goes through this one function."""

from __future__ import annotations

import logging

from sync.redaction import RedactPiiFilter

logger = logging.getLogger(__name__)
logger.addFilter(RedactPiiFilter())


def raise_alert(kind: str, source: str, message: str, context: dict | None = None) -> None:
    logger.error("ALERT %s [%s]: %s %s", kind, source, message, context or {})

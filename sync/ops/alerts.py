"""``raise_alert``: the one way an alert is recorded, logged and mailed.

An open alert is one row per (type, source): firing again bumps ``count`` (unless it is the
same ``occurrence``, e.g. the same run seen by two checks). Mail goes to the configured
recipients at most once per (type, source) per ``SYNC_ALERT_MAIL_INTERVAL``: the slot is
claimed with one conditional upsert on ``sync_alert_mail``, so the limit holds across
processes, hosts and restarts.
"""

from __future__ import annotations

import json
import logging
from functools import partial

from django.conf import settings
from django.core.mail import send_mail
from django.db import connection, transaction
from django.utils import timezone

from sync.access.request_id import correlation_id
from sync.ingest.source_settings import recipients_for
from sync.models import SyncAlert
from sync.redaction import RedactPiiFilter, redact

logger = logging.getLogger(__name__)
logger.addFilter(RedactPiiFilter())

_UPSERT = """
    WITH previous AS (
        SELECT occurrence FROM sync_alerts
        WHERE alert_type = %(type)s AND source = %(source)s AND acknowledged_at IS NULL)
    INSERT INTO sync_alerts AS a (alert_type, severity, source, message, context, occurrence,
                                  count, first_seen_at, last_seen_at)
    VALUES (%(type)s, %(severity)s, %(source)s, %(message)s, %(context)s, %(occurrence)s, 1,
            now(), now())
    ON CONFLICT (alert_type, source) WHERE acknowledged_at IS NULL DO UPDATE SET
        count = a.count + CASE WHEN EXCLUDED.occurrence <> ''
                                AND EXCLUDED.occurrence = a.occurrence THEN 0 ELSE 1 END,
        severity = EXCLUDED.severity, message = EXCLUDED.message, context = EXCLUDED.context,
        occurrence = EXCLUDED.occurrence, last_seen_at = now()
    RETURNING id, (SELECT occurrence FROM previous)
"""

# The hour's one mail: inserted, or taken over only when the last one is old enough. A
# concurrent claimer waits for the first one's row lock and then sees the fresh time.
_CLAIM = """
    INSERT INTO sync_alert_mail AS m (alert_type, source, last_sent_at)
    VALUES (%(type)s, %(source)s, now())
    ON CONFLICT (alert_type, source) DO UPDATE SET last_sent_at = now()
        WHERE m.last_sent_at <= now() - make_interval(secs => %(interval)s)
    RETURNING last_sent_at
"""


def _redact_tree(value: object) -> object:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {str(k): _redact_tree(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_tree(v) for v in value]
    return value


def raise_alert(
    alert_type: str,
    source: str,
    message: str,
    *,
    severity: str = SyncAlert.Severity.WARNING,
    context: dict | None = None,
    occurrence: str = "",
) -> SyncAlert:
    """Record (or repeat) an alert, log it, and mail it after commit within the hourly limit."""
    message = redact(message)[:2000]
    context = dict(context or {})
    if request_id := correlation_id():  # the request or task that raised it (its log lines)
        context.setdefault("request_id", request_id)
    params = {
        "type": alert_type,
        "source": source,
        "severity": severity,
        "message": message,
        "context": json.dumps(_redact_tree(context), default=str),
        "occurrence": occurrence,
    }
    with connection.cursor() as cursor:
        cursor.execute(_UPSERT, params)
        pk, previous = cursor.fetchone()
    alert = SyncAlert.objects.get(pk=pk)
    if occurrence and previous == occurrence:
        return alert  # seen already: neither logged nor mailed again
    logger.error("ALERT %s [%s] %s (x%s): %s", alert_type, source, severity, alert.count, message)
    transaction.on_commit(partial(alert_mail, alert_id=pk))
    return alert


def record_ingest_alert(
    sender: object,
    *,
    alert_type: str,
    source: str,
    message: str,
    severity: str,
    context: dict | None,
    occurrence: str,
    **_extra: object,
) -> None:
    """An alert ingestion raised (``sync.ingest.alerts.alert_raised``), recorded as any other."""
    raise_alert(
        alert_type, source, message, severity=severity, context=context, occurrence=occurrence
    )


def alert_mail(*, alert_id: int) -> bool:
    """Mail the alert unless this (type, source) was mailed within the interval."""
    alert = SyncAlert.objects.get(pk=alert_id)
    recipients = recipients_for(alert.source)
    if not recipients:
        return False
    with connection.cursor() as cursor:
        cursor.execute(
            _CLAIM,
            {
                "type": alert.alert_type,
                "source": alert.source,
                "interval": settings.SYNC_ALERT_MAIL_INTERVAL,
            },
        )
        claimed = cursor.fetchone()
    if claimed is None:
        return False
    subject = f"[syncops {alert.severity}] {alert.alert_type} on {alert.source}"
    body = (
        f"{alert.message}\n\nSource: {alert.source}\nSeen {alert.count} time(s) since "
        f"{alert.first_seen_at:%Y-%m-%d %H:%M:%S %Z}\n\nSee docs/operations.md, "
        f'"{alert.alert_type}", for what to do.\n'
    )
    try:
        send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, recipients)
    except OSError:  # smtplib errors are OSErrors too
        logger.exception(
            "alert mail for %s [%s] failed; the next firing retries", alert.alert_type, alert.source
        )
        with connection.cursor() as cursor:  # give the slot back
            cursor.execute(
                "DELETE FROM sync_alert_mail WHERE alert_type = %s AND source = %s"
                " AND last_sent_at = %s",
                [alert.alert_type, alert.source, claimed[0]],
            )
        return False
    SyncAlert.objects.filter(pk=alert_id).update(last_emailed_at=timezone.now())
    return True


def alert_acknowledge(*, alert_id: int, user: object) -> SyncAlert:
    """Close an alert: the next firing of its rule opens a new one."""
    SyncAlert.objects.filter(pk=alert_id, acknowledged_at__isnull=True).update(
        acknowledged_by=user, acknowledged_at=timezone.now()
    )
    return SyncAlert.objects.get(pk=alert_id)


def resolve_alert(alert_type: str, source: str, reason: str) -> int:
    """Close the open alert of this (type, source) because its figure has recovered: closed as
    an acknowledgement is, with no one's name on it, and logged; the next firing opens a new
    one. Answers how many were closed (0 or 1)."""
    closed = SyncAlert.objects.filter(
        alert_type=alert_type, source=source, acknowledged_at__isnull=True
    ).update(acknowledged_at=timezone.now(), acknowledged_by=None)
    if closed:
        logger.warning("RESOLVED %s [%s]: %s", alert_type, source, redact(reason))
    return closed

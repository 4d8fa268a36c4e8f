"""Alerts of ingestion, sent as ``alert_raised``: the operations layer records them
(``sync.ops.alerts.raise_alert``: ``sync_alerts``, the redacted log line, e-mail within the
hourly limit), connected by ``SyncConfig.ready`` (sync/apps.py). Ingestion sits below
operations, so it announces an alert rather than importing the alert service; a signal calls
its receivers synchronously, so the alert is recorded before ``raise_alert`` returns. An alert
about a run names the run, so the periodic rules that look at the same run later count it
once."""

from __future__ import annotations

from django.dispatch import Signal

from sync.models import SyncAlert

# Sent with alert_type, source, message, severity, context and occurrence (raise_alert's).
alert_raised = Signal()

_TYPES = {
    "gaps": (SyncAlert.Type.GAPS, SyncAlert.Severity.CRITICAL),
    "recovery_failed": (SyncAlert.Type.RECOVERY_FAILED, SyncAlert.Severity.CRITICAL),
    "permanent_failure": (SyncAlert.Type.PERMANENT_FAILURES, SyncAlert.Severity.WARNING),
}


def raise_alert(kind: str, source: str, message: str, context: dict | None = None) -> None:
    alert_type, severity = _TYPES[kind]
    run_id = (context or {}).get("run_id")
    alert_raised.send(
        sender=SyncAlert,
        alert_type=alert_type,
        source=source,
        message=message,
        severity=severity,
        context=context,
        occurrence=f"run:{run_id}" if run_id else "",
    )

"""Alerts of ingestion: recorded through the operations alert service (``sync_alerts``, the
redacted log line, e-mail within the hourly limit). An alert about a run names the run, so
the periodic rules that look at the same run later count it once."""

from __future__ import annotations

from sync.models import SyncAlert

_TYPES = {
    "gaps": (SyncAlert.Type.GAPS, SyncAlert.Severity.CRITICAL),
    "recovery_failed": (SyncAlert.Type.RECOVERY_FAILED, SyncAlert.Severity.CRITICAL),
    "permanent_failure": (SyncAlert.Type.PERMANENT_FAILURES, SyncAlert.Severity.WARNING),
}


def raise_alert(kind: str, source: str, message: str, context: dict | None = None) -> None:
    from sync.ops.alerts import raise_alert as record

    alert_type, severity = _TYPES[kind]
    run_id = (context or {}).get("run_id")
    record(
        alert_type,
        source,
        message,
        severity=severity,
        context=context,
        occurrence=f"run:{run_id}" if run_id else "",
    )

"""The security log (``sync_security_events``) and its alert on a burst of login failures.

``security_event_record`` is the one way a row is written; callers pass ids, usernames of
accounts, addresses and request ids, never what a person typed (DESIGN I6, I11). Rows are
archived and deleted after the retention days like the other audit tables
(``sync.ops.retention``). When ``SECURITY_ALERT_LOGIN_FAILURES`` failed logins happen within
``SECURITY_ALERT_WINDOW_MINUTES`` (across all users and addresses: a password spray stays
under every per-user lock-out), a ``login_failures`` alert is raised through ``raise_alert``
(the dashboard, and mail at most once per interval).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from importlib import import_module
from typing import Any

from django.conf import settings
from django.utils import timezone

from sync.models import SecurityEvent, SyncAlert, SyncConfig
from sync.ops.alerts import raise_alert
from sync.redaction import redact

logger = logging.getLogger(__name__)

Kind = SecurityEvent.Kind


def security_event_record(
    *,
    kind: str,
    user: Any = None,
    username: str = "",
    actor: str = "",
    ip: str | None = None,
    request_id: str = "",
    path: str = "",
    status_code: int | None = None,
    details: dict[str, Any] | None = None,
) -> SecurityEvent:
    """One row of the security log. ``user`` (an account) gives the id and username; a path
    is stored without its query string and redacted (a path may carry a looked-up value)."""
    if user is not None and getattr(user, "pk", None) is not None:
        username = user.get_username()
    else:
        user = None
    event = SecurityEvent.objects.create(
        kind=kind,
        user=user,
        username=redact(username)[:150],
        actor=redact(actor)[:150],
        ip=ip or None,
        request_id=request_id[:64],
        path=redact(path.split("?", 1)[0])[:200],
        status_code=status_code,
        details=details or {},
    )
    # NOTE: no address in the log line: the table has it, behind the console's roles.
    logger.info(
        "security event %s (#%s) user=%s path=%s", kind, event.pk, event.user_id, event.path
    )
    if kind == Kind.LOGIN_FAILED:
        login_failure_burst_check()
    return event


def login_failure_burst_check() -> SyncAlert | None:
    """Raise ``login_failures`` when the window holds at least the configured number of
    failed logins; one occurrence per window, so a long burst bumps the alert's count once per
    window rather than once per attempt."""
    threshold = settings.SECURITY_ALERT_LOGIN_FAILURES
    window = timedelta(minutes=settings.SECURITY_ALERT_WINDOW_MINUTES)
    now = timezone.now()
    failures = SecurityEvent.objects.filter(
        kind=Kind.LOGIN_FAILED, created_at__gte=now - window
    ).count()
    if failures < threshold:
        return None
    bucket = int(now.timestamp() // window.total_seconds())
    addresses = (
        SecurityEvent.objects.filter(kind=Kind.LOGIN_FAILED, created_at__gte=now - window)
        .values("ip")
        .distinct()
        .count()
    )
    return raise_alert(
        SyncAlert.Type.LOGIN_FAILURES,
        SyncConfig.ENGINE,
        f"{failures} failed logins within {settings.SECURITY_ALERT_WINDOW_MINUTES:g} minutes "
        f"(from {addresses} address(es)); see the security events in the console",
        severity=SyncAlert.Severity.CRITICAL,
        context={
            "failures": failures,
            "addresses": addresses,
            "window_minutes": settings.SECURITY_ALERT_WINDOW_MINUTES,
        },
        occurrence=f"login-failures:{bucket}",
    )


def sessions_clear_expired() -> None:
    """Delete expired sessions (Django's ``clearsessions``, for whichever ``SESSION_ENGINE``);
    the daily retention task calls it, so ``sync_sessions`` holds live sessions only."""
    import_module(settings.SESSION_ENGINE).SessionStore.clear_expired()

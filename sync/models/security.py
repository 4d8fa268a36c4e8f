"""Tables of session management and the security log, re-exported by sync.models.

* ``SecurityEvent`` (``sync_security_events``): logins, login failures, lock-outs, ended
  sessions, permission denials, password / staff-flag / role changes. PII-free: a user id and
  username, an address, the request id, a path without its query string, ids in ``details``.
* ``UserSession`` (``sync_sessions``): Django's database sessions with the user's id in its
  own indexed column (``SESSION_ENGINE = "sync.console.session_store"``), so ending every
  session of a user is one indexed DELETE, however large the table.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.sessions.base_session import AbstractBaseSession
from django.db import models
from django.db.models.functions import Now


class SecurityEvent(models.Model):
    class Kind(models.TextChoices):
        LOGIN = "login", "Login"
        LOGIN_FAILED = "login_failed", "Login failed"
        LOCKOUT = "lockout", "Lockout"
        LOGOUT = "logout", "Logout"
        SESSION_EXPIRED = "session_expired", "Session expired"
        DENIED = "denied", "Denied"
        PASSWORD_CHANGED = "password_changed", "Password changed"
        DEACTIVATED = "deactivated", "Deactivated"
        ACTIVATED = "activated", "Activated"
        STAFF_GRANTED = "staff_granted", "Staff granted"
        STAFF_REVOKED = "staff_revoked", "Staff revoked"
        ROLE_ADDED = "role_added", "Role added"
        ROLE_REMOVED = "role_removed", "Role removed"

    created_at = models.DateTimeField(db_default=Now())
    kind = models.CharField(max_length=30, choices=Kind.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Whom the event is about.",
    )
    # Kept apart from the foreign key: the row outlives a deleted account.
    username = models.CharField(max_length=150, blank=True, default="")
    actor = models.CharField(
        max_length=150,
        blank=True,
        default="",
        help_text="Who made the change, when not the user themselves.",
    )
    ip = models.GenericIPAddressField(null=True, blank=True)
    request_id = models.CharField(max_length=64, blank=True, default="")
    path = models.CharField(
        max_length=200, blank=True, default="", help_text="Without the query string."
    )
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    details = models.JSONField(default=dict, blank=True, help_text="Never PII.")

    class Meta:
        db_table = "sync_security_events"
        verbose_name = "security event"
        ordering = ["-created_at"]
        indexes = [
            # The console's list: newest first.
            models.Index(fields=["-created_at"], name="security_event_recent_idx"),
            # The burst alert: login failures within the last minutes; the list's kind filter.
            models.Index(fields=["kind", "-created_at"], name="security_event_kind_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.kind} {self.username or '-'}"


class UserSession(AbstractBaseSession):
    """A database session; ``user_id`` is written by the session store on every save."""

    user_id = models.BigIntegerField(null=True, blank=True)

    class Meta:
        db_table = "sync_sessions"
        verbose_name = "session"
        indexes = [
            # Ending a user's sessions (password change, deactivation, staff flag removed).
            models.Index(fields=["user_id"], name="sync_session_user_idx"),
        ]

"""Tables of the operations console (docs/console.md), re-exported by sync.models.

* ``StaffAction`` (``sync_staff_actions``): every staff action taken in the console or its
  JSON API (who, what, on what, when, from which IP). Its ``Meta.permissions`` are the three
  console permissions the roles are made of (``sync.access.roles``).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models.functions import Now


class StaffAction(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Kept apart from the foreign key: the audit row outlives a deleted account.
    username = models.CharField(max_length=150)
    action = models.CharField(max_length=100, help_text="e.g. sync.start, alert.acknowledge.")
    target = models.CharField(
        max_length=200,
        blank=True,
        default="",
        help_text="What the action was applied to, e.g. buyers or run 17.",
    )
    details = models.JSONField(
        default=dict, blank=True, help_text="Parameters of the action (never PII)."
    )
    ip = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(db_default=Now())

    class Meta:
        db_table = "sync_staff_actions"
        verbose_name = "staff action"
        ordering = ["-created_at"]
        indexes = [
            # The console's audit list: newest first, optionally one person's.
            models.Index(fields=["-created_at"], name="staff_action_recent_idx"),
            models.Index(fields=["username", "-created_at"], name="staff_action_user_idx"),
        ]
        # The console's roles are groups holding these (sync.access.roles).
        permissions = [
            ("view_console", "Can view the operations console (read-only)"),
            # NOTE: names fit 50 characters: auth's first migration, met when migrating to
            # zero, had a varchar(50) name column.
            ("operate_console", "Can operate the console: syncs, cache, alerts"),
            ("view_pii", "Can see unmasked personal data (PII)"),
        ]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.username} {self.action} {self.target}"

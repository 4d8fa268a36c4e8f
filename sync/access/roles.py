"""The console's roles: Django groups holding the three console permissions.

* **Console viewer**: reads every console page and the JSON API's GET endpoints.
* **Console operator**: a viewer who may also start and cancel syncs, resync or verify the
  cache, retry or discard queue rows, acknowledge alerts and edit the configuration.
* **PII viewer**: a viewer who sees personal data unmasked; everyone else sees ``j***@e***.com``.

The groups are created by the data migration ``sync/0005_add_console_roles``; a person is
given a role by adding them to a group (and ``is_staff`` for the admin pages). Superusers hold
every permission. Views and admin classes ask through the helpers below, never by group name.
"""

from __future__ import annotations

from typing import Any

VIEW_CONSOLE = "sync.view_console"
OPERATE_CONSOLE = "sync.operate_console"
VIEW_PII = "sync.view_pii"

VIEWER = "Console viewer"
OPERATOR = "Console operator"
PII_VIEWER = "PII viewer"

# Group name -> codenames of the permissions (on sync.StaffAction) it holds.
ROLES: dict[str, tuple[str, ...]] = {
    VIEWER: ("view_console",),
    OPERATOR: ("view_console", "operate_console"),
    PII_VIEWER: ("view_console", "view_pii"),
}


def _active(user: Any) -> bool:
    # The admin's own rule (AdminSite.has_permission): a role counts only for an active staff
    # account, in the admin and in every API alike (sync.access.api).
    return bool(user is not None and user.is_authenticated and user.is_active and user.is_staff)


def can_view(user: Any) -> bool:
    return _active(user) and user.has_perm(VIEW_CONSOLE)


def can_operate(user: Any) -> bool:
    return _active(user) and user.has_perm(OPERATE_CONSOLE)


def can_view_pii(user: Any) -> bool:
    return _active(user) and user.has_perm(VIEW_PII)


# sync_config: the settings an operator changes (admin form and PUT /api/sync/config alike)
# and those among them that hold PII (alert recipients are e-mail addresses): a role that
# sees those masked may not change them either, or it could redirect alert mail unseen.
CONFIG_FIELDS: tuple[str, ...] = (
    "enabled",
    "interval_seconds",
    "batch_size",
    "auto_recovery",
    "recipients",
    "failure_threshold",
    "gap_threshold",
    "no_success_hours",
    "error_rate_threshold",
    "permanent_failure_threshold",
    "long_run_minutes",
    "degradation_ratio",
    "retry_queue_threshold",
    "oldest_intent_seconds",
    "dead_intent_threshold",
    "retention_days",
)
CONFIG_PII_FIELDS: tuple[str, ...] = ("recipients",)


def config_fields_changeable(user: Any) -> tuple[str, ...]:
    """The ``sync_config`` fields ``user`` may change: none without the operator role, the
    PII ones only with the PII role too."""
    if not can_operate(user):
        return ()
    if can_view_pii(user):
        return CONFIG_FIELDS
    return tuple(f for f in CONFIG_FIELDS if f not in CONFIG_PII_FIELDS)

"""Staff actions, recorded: who did what to what, when and from which address."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

# The one rule for the client's address (TRUSTED_PROXY_COUNT), re-exported for callers here.
from sync.access.client_ip import client_ip
from sync.models import StaffAction

__all__ = ["client_ip", "record_action_by", "record_staff_action"]


def record_action_by(
    actor: Any,
    ip: str | None,
    *,
    action: str,
    target: str = "",
    details: dict[str, Any] | None = None,
) -> StaffAction:
    """One audit row for an action of ``actor`` (a user; anonymous or ``None``: nobody) from
    address ``ip``; ``details`` must hold no PII (ids, names of sources)."""
    user = actor if actor is not None and actor.is_authenticated else None
    return StaffAction.objects.create(
        user=user,
        username=user.get_username() if user else "",
        action=action,
        target=str(target)[:200],
        details=details or {},
        ip=ip,
    )


def record_staff_action(
    request: HttpRequest, *, action: str, target: str = "", details: dict[str, Any] | None = None
) -> StaffAction:
    """``record_action_by`` for a view: the request's user, from its client address."""
    return record_action_by(
        request.user, client_ip(request), action=action, target=target, details=details
    )

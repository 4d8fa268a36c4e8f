"""Staff actions, recorded: who did what to what, when and from which address (issue 6)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

# The one rule for the client's address (TRUSTED_PROXY_COUNT), re-exported for callers here.
from sync.access.client_ip import client_ip
from sync.models import StaffAction

__all__ = ["client_ip", "record_staff_action"]


def record_staff_action(
    request: HttpRequest, *, action: str, target: str = "", details: dict[str, Any] | None = None
) -> StaffAction:
    """One audit row for a staff action; ``details`` must hold no PII (ids, names of sources)."""
    user = request.user if request.user.is_authenticated else None
    return StaffAction.objects.create(
        user=user,
        username=user.get_username() if user else "",
        action=action,
        target=str(target)[:200],
        details=details or {},
        ip=client_ip(request),
    )

"""The one access rule of every JSON API (the catalog's staff API and the console's API):
the admin's own, asked on every request (DESIGN I11).

A request passes when its user is logged in, active, staff (``is_staff``, what
``AdminSite.has_permission`` asks) and holds the console role the operation needs
(``sync.access.roles``). Django loads the user from the database on every request, so a
staff flag removed or a role taken away applies to a session that is already open: the old
session cookie keeps no rights the account has lost. (A deactivated user's session does not
even authenticate: Django's backend refuses inactive users, so that is a 401.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

RoleCheck = Callable[[Any], bool]


@dataclass(frozen=True)
class Denial:
    """Why a request is refused: ``status`` 401 (no session) or 403, and a message for it."""

    status: int
    message: str


NOT_LOGGED_IN = Denial(401, "authentication required: log in (session cookie)")
NOT_STAFF = Denial(403, "permission denied: this account is not (or no longer) staff")
NO_ROLE = Denial(403, "permission denied: your console role does not allow this")


def api_denial(user: Any, check: RoleCheck) -> Denial | None:
    """``None`` when ``user`` may do what ``check`` (a ``roles.can_*`` helper) guards, else
    the refusal to send."""
    if user is None or not user.is_authenticated:
        return NOT_LOGGED_IN
    if not (user.is_active and user.is_staff):
        return NOT_STAFF
    if not check(user):
        return NO_ROLE
    return None

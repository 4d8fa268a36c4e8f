"""Users of each console role, and logged-in clients for them (issue 6).

The roles are the groups the data migration ``sync/0005_add_console_roles`` created: these
fixtures put a staff user in the real group, so a test exercises the same permission rows a
person would hold. ``client_for("viewer")`` (or ``"anonymous"``) gives a logged-in
``django.test.Client``; tests in this folder (admin, API, dashboard) share them.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client

from sync.console import roles

ROLE_NAMES = ("anonymous", "viewer", "operator", "pii_viewer", "superuser")
PASSWORD = "console-test-password"

_GROUPS = {"viewer": roles.VIEWER, "operator": roles.OPERATOR, "pii_viewer": roles.PII_VIEWER}


def make_staff_user(role: str, *, username: str | None = None) -> User:
    """A staff user holding ``role`` (``viewer``, ``operator``, ``pii_viewer`` or
    ``superuser``); ``staff`` gives a staff user without any console group."""
    username = username or f"{role}-user"
    if role == "superuser":
        return User.objects.create_superuser(username, f"{username}@staff.invalid", PASSWORD)
    user = User.objects.create_user(username, f"{username}@staff.invalid", PASSWORD,
                                    is_staff=True)
    if role in _GROUPS:
        user.groups.add(Group.objects.get(name=_GROUPS[role]))
    return user


@pytest.fixture
def viewer(db) -> User:
    return make_staff_user("viewer")


@pytest.fixture
def operator(db) -> User:
    return make_staff_user("operator")


@pytest.fixture
def pii_viewer(db) -> User:
    return make_staff_user("pii_viewer")


@pytest.fixture
def superuser(db) -> User:
    return make_staff_user("superuser")


@pytest.fixture
def plain_staff(db) -> User:
    """Staff without any console group: the admin site lets them in, the console does not."""
    return make_staff_user("staff")


@pytest.fixture
def role_users(db) -> dict[str, User | None]:
    """One user per role name of ``ROLE_NAMES`` (``anonymous`` is ``None``)."""
    users: dict[str, User | None] = {"anonymous": None}
    users.update({role: make_staff_user(role) for role in ROLE_NAMES[1:]})
    return users


@pytest.fixture
def client_for(db, role_users) -> Callable[..., Client]:
    """``client_for("operator")``: a client logged in as that role's user (``anonymous``:
    not logged in). Each call gives a fresh client; ``enforce_csrf_checks=True`` for tests
    of CSRF."""

    def build(role: str, *, enforce_csrf_checks: bool = False) -> Client:
        client = Client(enforce_csrf_checks=enforce_csrf_checks)
        user = role_users[role]
        if user is not None:
            client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
        return client

    return build

"""The console's roles come from the data migration and the helpers decide by permission."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser, Group

from sync.access import roles
from tests.console.conftest import ensure_role_groups

pytestmark = pytest.mark.django_db


def test_the_migration_created_each_role_with_its_permissions():
    ensure_role_groups()  # (a transactional test earlier in the run flushes them)
    for group_name, codenames in roles.ROLES.items():
        group = Group.objects.get(name=group_name)
        held = set(group.permissions.values_list("content_type__app_label", "codename"))
        assert held == {("sync", codename) for codename in codenames}


@pytest.mark.parametrize(
    ("role", "view", "operate", "pii"),
    [
        ("viewer", True, False, False),
        ("operator", True, True, False),
        ("pii_viewer", True, False, True),
        ("superuser", True, True, True),
        ("plain_staff", False, False, False),
    ],
)
def test_helpers_follow_the_groups(request, role, view, operate, pii):
    user = request.getfixturevalue(role)
    assert (roles.can_view(user), roles.can_operate(user), roles.can_view_pii(user)) == (
        view,
        operate,
        pii,
    )


def test_anonymous_and_inactive_users_hold_nothing(operator):
    assert not roles.can_view(AnonymousUser())
    assert not roles.can_view(None)
    operator.is_active = False
    assert not roles.can_operate(operator)


def test_client_for_logs_in_the_role(client_for, role_users):
    assert client_for("anonymous").get("/admin/").status_code == 302
    response = client_for("viewer").get("/admin/")
    assert response.status_code == 200
    assert response.wsgi_request.user == role_users["viewer"]


def test_a_console_role_without_staff_status_does_not_open_the_admin(viewer):
    from django.test import Client

    viewer.is_staff = False
    viewer.save(update_fields=["is_staff"])
    client = Client()
    client.force_login(viewer, backend="django.contrib.auth.backends.ModelBackend")
    response = client.get("/admin/sync/syncrun/")
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")

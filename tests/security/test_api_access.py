"""Both JSON APIs apply the admin's rules on every request.

* An operator whose staff flag was removed keeps a valid session cookie, but neither the staff
  catalog API nor the console API lets it write stock or start a sync (nor read).
* ``PUT /api/sync/config`` refuses the fields the admin shows the role masked and read-only
  (alert recipients without the PII role): one rule, ``roles.config_fields_changeable``.
"""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client

from catalog.models import StockLevel
from sync.access import roles
from sync.ingest.source_settings import config_ensure, config_fields
from sync.models import StaffAction, SyncConfig, SyncRun
from sync.ops.source_settings import config_update
from tests.catalog.conftest import new_part as make_part
from tests.console.conftest import ensure_role_groups, make_staff_user

pytestmark = pytest.mark.django_db


def _login(user: User) -> Client:
    client = Client()
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    return client


def _put_stock(client: Client, part_id: int, version: int) -> object:
    return client.put(
        f"/api/staff/parts/{part_id}/stock",
        json.dumps({"quantity": 77}),
        content_type="application/json",
        HTTP_IF_MATCH=f'"{version}"',
    )


def _start_sync(client: Client) -> object:
    return client.post(
        "/api/sync/manual", json.dumps({"source": "buyers"}), content_type="application/json"
    )


def test_an_operator_no_longer_staff_is_refused_by_both_apis_with_the_old_session() -> None:
    operator = make_staff_user("operator", username="was-staff")
    part = make_part(quantity=5)
    client = _login(operator)
    version = StockLevel.objects.get(pk=part.pk).version
    assert client.get(f"/api/staff/parts/{part.pk}").status_code == 200
    assert client.get("/api/sync/status").status_code == 200
    # NOTE: update(), not save(): no signal may end the session here; the APIs must refuse
    # on their own, on this very request, as the admin does.
    User.objects.filter(pk=operator.pk).update(is_staff=False)

    stock = _put_stock(client, part.pk, version)
    assert stock.status_code == 403
    assert "staff" in stock.json()["detail"]
    assert StockLevel.objects.get(pk=part.pk).quantity == 5
    started = _start_sync(client)
    assert started.status_code == 403
    assert "staff" in started.json()["error"]
    assert not SyncRun.objects.exists()
    for url in (f"/api/staff/parts/{part.pk}", "/api/sync/status", "/api/sync/config"):
        assert client.get(url).status_code == 403, url
    # the admin says the same: its login page instead of its index
    assert client.get("/admin/").status_code == 302

    User.objects.filter(pk=operator.pk).update(is_staff=True)
    assert _put_stock(client, part.pk, version).status_code == 200


def test_a_removed_role_and_a_deactivation_apply_to_an_open_session() -> None:
    operator = make_staff_user("operator", username="lost-role")
    part = make_part(quantity=5)
    client = _login(operator)
    version = StockLevel.objects.get(pk=part.pk).version
    operator.groups.clear()
    assert _put_stock(client, part.pk, version).status_code == 403
    assert _start_sync(client).status_code == 403
    User.objects.filter(pk=operator.pk).update(is_active=False)
    assert _put_stock(client, part.pk, version).status_code in {401, 403}
    assert _start_sync(client).status_code in {401, 403}
    assert StockLevel.objects.get(pk=part.pk).quantity == 5
    assert not SyncRun.objects.exists()


def _put_config(client: Client, body: dict) -> object:
    return client.put("/api/sync/config", json.dumps(body), content_type="application/json")


def test_an_operator_cannot_redirect_alert_mail_through_the_api() -> None:
    config_ensure()
    config_update(source="buyers", recipients="ops@staff.example")
    operator = _login(make_staff_user("operator", username="mail-operator"))
    refused = _put_config(
        operator, {"source": "buyers", "recipients": "evil@attacker.example", "batch_size": 7}
    )
    assert refused.status_code == 403
    assert refused.json()["fields"] == {"recipients": ["your role may not change this setting"]}
    config = SyncConfig.objects.get(source="buyers")
    assert config.recipients == "ops@staff.example" and config.batch_size != 7  # nothing
    assert not StaffAction.objects.filter(action="config.update").exists()
    # what the role may change, it still changes
    assert _put_config(operator, {"source": "buyers", "batch_size": 7}).status_code == 200
    assert SyncConfig.objects.get(source="buyers").batch_size == 7

    # an operator who also holds the PII role sees the addresses, and may change them
    both = make_staff_user("operator", username="pii-operator")
    ensure_role_groups()
    both.groups.add(Group.objects.get(name=roles.PII_VIEWER))
    changed = _put_config(_login(both), {"source": "buyers", "recipients": "new@staff.example"})
    assert changed.status_code == 200
    assert SyncConfig.objects.get(source="buyers").recipients == "new@staff.example"


@pytest.mark.parametrize("role", ["viewer", "operator", "pii_viewer", "superuser"])
def test_the_admin_form_and_the_api_change_the_same_fields(role: str) -> None:
    config_ensure()
    user = make_staff_user(role, username=f"fields-{role}")
    # A source's page offers a source's settings only (the engine's are on its own row).
    allowed = set(roles.config_fields_changeable(user)) & set(config_fields("buyers"))
    config = SyncConfig.objects.get(source="buyers")
    page = _login(user).get(f"/admin/sync/syncconfig/{config.pk}/change/")
    assert page.status_code == 200
    form_fields = set(page.context["adminform"].form.fields) if allowed else set()
    assert form_fields == allowed
    for name, value in (("recipients", "x@staff.example"), ("enabled", False)):
        response = _put_config(_login(user), {"source": "buyers", name: value})
        assert (response.status_code == 200) == (name in allowed), (name, response.json())
        assert response.status_code in {200, 403}

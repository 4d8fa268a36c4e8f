"""No PII on any page for a user without the PII role.

Canaries are planted in every personal field of every model the console shows (and named in
the free texts: error reasons, alert messages, queue errors, run messages); then every page
of the project a viewer or an operator can open (from the resolver: lists, details, histories,
the dashboard, the JSON APIs) and every changelist searched for the canaries is scanned. The
console's admin pages are scanned once more with the free texts stored unredacted, as if a
bug had skipped the engine's redaction: the pages redact them again.
"""

from __future__ import annotations

import html
from urllib.parse import quote, quote_plus

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType

from sync.console.admin_base import ConsoleModelAdmin
from tests.console.conftest import CANARY, canary_values, make_world, project_routes

pytestmark = pytest.mark.django_db

NOT_PAGES = {"/admin/logout/", "/api/events"}  # POST only; a stream that never ends
SEARCHED = (CANARY["email"], CANARY["name"], CANARY["phone"], "canary")


def leaks(text: str, *, echo: str = "") -> list[str]:
    """Canaries in ``text``, apart from ``echo`` (the user's own search term, shown back)."""
    for shown in {echo, html.escape(echo), quote(echo), quote(echo, safe=""), quote_plus(echo)} - {
        ""
    }:
        text = text.replace(shown, "")
    lowered = text.lower()
    return [value for value in canary_values() if value.lower() in lowered]


def urls(role_users, *, raw_free_text: bool = False, console_admin_only: bool = False):
    """(url, search term) of every page to scan."""
    objects = make_world(raw_free_text=raw_free_text)
    for key in ("buyer", "customer", "seller"):
        row = objects[key]  # a history entry as the admin writes it: field names only
        LogEntry.objects.create(
            user=role_users["superuser"],
            content_type=ContentType.objects.get_for_model(row),
            object_id=str(row.pk),
            object_repr=str(row),
            action_flag=CHANGE,
            change_message='[{"changed": {"fields": ["Email", "Phone"]}}]',
        )
    routes = [
        r
        for r in project_routes(objects)
        if r.path not in NOT_PAGES
        and (not console_admin_only or isinstance(r.model_admin, ConsoleModelAdmin))
    ]
    pages = [(route.path, "") for route in routes]
    searches = [
        (route.path, term)
        for route in routes
        if route.name.endswith("_changelist")
        for term in SEARCHED
    ]
    return objects, pages + searches


def scan(client, pages) -> tuple[int, list[str]]:
    opened, found = 0, []
    for path, term in pages:
        response = client.get(path, {"q": term} if term else {})
        if response.status_code != 200 or response.streaming:
            continue
        opened += 1
        found += [
            f"{path} {term!r}: {value!r}" for value in leaks(response.content.decode(), echo=term)
        ]
        if term and term != "canary":  # no PII search: no way to probe for a person
            assert response.context["cl"].result_count == 0, (path, term)
    return opened, found


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_no_page_shows_pii_to_a_user_without_the_pii_role(client_for, role_users, role):
    _objects, pages = urls(role_users)
    opened, found = scan(client_for(role), pages)
    assert not found, f"PII shown to a {role}:\n" + "\n".join(found)
    assert opened > 100  # lists, details, histories, searches, dashboard, API reads


def test_console_pages_redact_free_text_stored_unredacted(client_for, role_users):
    _objects, pages = urls(role_users, raw_free_text=True, console_admin_only=True)
    opened, found = scan(client_for("viewer"), pages)
    assert not found, "PII shown to a viewer:\n" + "\n".join(found)
    assert opened > 80


def test_the_scan_would_see_pii_where_it_is_allowed(client_for, role_users):
    objects, _pages = urls(role_users, raw_free_text=True)
    client = client_for("pii_viewer")
    meta = objects["buyer"]._meta
    buyer = f"/admin/{meta.app_label}/{meta.model_name}/{objects['buyer'].pk}/change/"
    assert CANARY["email"] in leaks(client.get(buyer).content.decode())
    error = f"/admin/sync/errorlog/{objects['error'].pk}/change/"
    assert CANARY["email"] in leaks(client.get(error).content.decode())
    searched = client.get(f"/admin/{meta.app_label}/{meta.model_name}/", {"q": CANARY["email"]})
    assert searched.context["cl"].result_count == 1

"""The permission matrix: every URL of the project by every role, against rules.

The URLs come from the resolver (``project_routes``: includes, the admin's per-model URLs,
the JSON APIs), never from a hand list, with parameters filled by real rows. Each is
classified by the rules below into what each role must get; a URL no rule classifies fails
the test, so a new endpoint cannot slip in without someone deciding who may use it.

Roles run in the order anonymous, viewer, PII viewer, operator, superuser: the refusals come
before the writes that pass (which use harmless bodies: a status that shows the permission
check passed, e.g. 200, 202 or a 4xx validation error, is all that matters).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from asgiref.sync import async_to_sync
from django.http import HttpResponse
from django.test import AsyncClient

from sync.console.admin_base import ConsoleModelAdmin
from tests.console.conftest import ROLE_NAMES, Route, make_world, project_routes

pytestmark = pytest.mark.django_db

LOGIN_URL = "/admin/login/"
STAFF_ROLES = ROLE_NAMES[1:]  # every role user is is_staff
CONSOLE_APPS = {"sync", "buyers", "sellers", "customers", "catalog"}
# Models a superuser may add and delete by hand; sheet rows (their sheet is the truth), the
# catalog (changed through the staff API's services only) and the engine's tables (written by
# the engine, the audit list above all) are never edited.
HAND_EDITABLE = {"customers.customer", "customers.order"}
# Models an operator edits in the console.
OPERATOR_EDITABLE = {"sync.syncconfig"}
# Third-party admins that refuse adds to everyone (django-axes: its rows are its own).
NO_ADD = {"axes.accessattempt", "axes.accesslog", "axes.accessfailurelog"}
# Console pages that change something: POST only, for operators.
ACTION_WORDS = {
    "start",
    "cancel",
    "acknowledge",
    "retry",
    "discard",
    "resync",
    "verify",
    "upload",
    "confirm",
    "preview",
}
# Console downloads only operators may read (a run's rejected rows: sheet content).
OPERATOR_DOWNLOADS = ("rejects.csv",)
# ... and those only operators who are PII viewers may read (an uploaded sheet as it was).
PII_OPERATOR_DOWNLOADS = ("/file",)
API_DOCUMENTS = {"/api/openapi.json", "/api/docs"}
STREAMS = {"/api/events"}
WRITE_METHODS = ("post", "put", "patch", "delete")


@dataclass(frozen=True)
class Expect:
    text: str
    check: Callable[[HttpResponse], bool]


def status(*codes: int) -> Expect:
    return Expect(" or ".join(map(str, codes)), lambda r: r.status_code in codes)


def _to_login(r: HttpResponse) -> bool:
    return r.status_code == 302 and r["Location"].startswith(LOGIN_URL)


OK, FORBIDDEN, NOT_FOUND, NOT_ALLOWED = status(200), status(403), status(404), status(405)
REDIRECT = Expect("302 (not to the login)", lambda r: r.status_code == 302 and not _to_login(r))
LOGIN = Expect("302 to the login page", _to_login)
API_ANONYMOUS = Expect(
    "401 or 403 JSON",
    lambda r: r.status_code in (401, 403) and r["Content-Type"].startswith("application/json"),
)
API_FORBIDDEN = Expect(
    "403 JSON", lambda r: r.status_code == 403 and r["Content-Type"].startswith("application/json")
)
PASSED = Expect(
    "the permission check passed (2xx, 3xx other than the login, 4xx validation)",
    lambda r: r.status_code < 500 and r.status_code not in (401, 403, 405) and not _to_login(r),
)
PUBLIC = Expect(
    "public: not refused", lambda r: r.status_code not in (401, 403) and not _to_login(r)
)

Matrix = dict[str, Expect]


def each(expect: Expect, **overrides: Expect) -> Matrix:
    return {role: overrides.get(role, expect) for role in ROLE_NAMES}


def staff(expect: Expect, **overrides: Expect) -> Matrix:
    """An admin view: anonymous goes to the login page, staff get ``expect``."""
    return each(expect, anonymous=LOGIN, **overrides)


def operators(passed: Expect = PASSED) -> Matrix:
    return staff(passed, viewer=FORBIDDEN, pii_viewer=FORBIDDEN)


def superuser_only(expect: Expect = OK) -> Matrix:
    return staff(FORBIDDEN, superuser=expect)


# --------------------------------------------------------------------------- the rules

ADMIN_SITE_PAGES: dict[str, Matrix] = {
    "/admin/": staff(OK),
    "/admin/login/": each(REDIRECT, anonymous=OK),  # staff are sent on to the index
    # POST only (Django 5); the admin sends anyone without access on to its index first.
    "/admin/logout/": each(NOT_ALLOWED, anonymous=REDIRECT),
    "/admin/password_change/": staff(OK),
    "/admin/password_change/done/": staff(OK),
    "/admin/jsi18n/": staff(OK),
    "/admin/autocomplete/": staff(FORBIDDEN),  # nothing here is autocompleted
}


def admin_model_rules(route: Route, method: str) -> Matrix | None:
    """The admin's per-model URLs: changelist, add, change, history, delete (and the bare
    ``<id>/`` that redirects to change)."""
    kind = route.name.rsplit("_", 1)[-1] if route.name else "redirect"
    label = route.label
    if method == "post":
        if kind != "change":
            return None
        if not isinstance(route.model_admin, ConsoleModelAdmin):
            return superuser_only(PASSED)
        return staff(
            FORBIDDEN,
            operator=PASSED if label in OPERATOR_EDITABLE else FORBIDDEN,
            superuser=PASSED if label in OPERATOR_EDITABLE | HAND_EDITABLE else FORBIDDEN,
        )
    if kind == "redirect":
        return staff(REDIRECT)
    if not isinstance(route.model_admin, ConsoleModelAdmin):
        # auth, django-celery-beat, django-axes: their own admin, for superusers only.
        if kind == "add" and label in NO_ADD:
            return staff(FORBIDDEN)
        return superuser_only()
    if kind in ("changelist", "change", "history"):
        return staff(OK)  # every console role reads every console page
    if kind in ("add", "delete"):
        return superuser_only() if label in HAND_EDITABLE else staff(FORBIDDEN)
    return None


def admin_rules(route: Route, method: str) -> Matrix | None:
    path = route.path
    if route.model_admin is not None:
        return admin_model_rules(route, method)
    if method == "get" and path in ADMIN_SITE_PAGES:
        return ADMIN_SITE_PAGES[path]
    if route.name == "view_on_site":
        return staff(NOT_FOUND) if method == "get" else None  # a part has no public page
    if route.name == "auth_user_password_change":
        return superuser_only() if method == "get" else None
    if route.name == "app_list" and method == "get":
        app = path.strip("/").split("/")[-1]
        return staff(OK) if app in CONSOLE_APPS else staff(NOT_FOUND, superuser=OK)
    if route.template.endswith("(?P<url>.*)$"):
        return staff(NOT_FOUND) if method == "get" else None
    if path.startswith("/admin/console/") and path.endswith(OPERATOR_DOWNLOADS):
        return operators(OK) if method == "get" else staff(NOT_ALLOWED)
    if path.startswith("/admin/console/") and path.endswith(PII_OPERATOR_DOWNLOADS):
        # Operators who are PII viewers (only the superuser here); the walk's upload was
        # purged, so the superuser finds it gone.
        return staff(FORBIDDEN, superuser=NOT_FOUND) if method == "get" else staff(NOT_ALLOWED)
    if path.startswith("/admin/console/"):  # the console's own pages (dashboard engineer)
        acting = path.rstrip("/").rsplit("/", 1)[-1] in ACTION_WORDS
        if method == "get":
            return staff(NOT_ALLOWED) if acting else staff(OK)
        # A page is not an action: a POST to it changes nothing (405, or the page again).
        return operators() if acting else staff(status(200, 405))
    return None


def api_rules(route: Route, method: str) -> Matrix | None:
    path = route.path
    if path in ("/api/", "/api/sync/"):
        return each(NOT_FOUND)  # no page at an API's root, whatever the method
    if path.startswith("/api/sync/") or path.startswith("/api/staff/"):
        # Reads need the viewer role, writes the operator role; 401/403 JSON otherwise. The
        # console API's OpenAPI document and its page are reads like the others.
        if method == "get":
            return each(OK, anonymous=API_ANONYMOUS)
        return each(PASSED, anonymous=API_ANONYMOUS, viewer=API_FORBIDDEN, pii_viewer=API_FORBIDDEN)
    if path in API_DOCUMENTS:
        # Read-only documents (ninja's plain views answer every method alike): public.
        return each(OK) if method == "get" else each(PUBLIC)
    if path == "/api/parts" or path.startswith("/api/parts/"):
        return each(OK) if method == "get" else None  # public reads (writes: 405 above)
    return None


def rules(route: Route, method: str) -> Matrix | None:
    """What each role gets for ``method`` on ``route``; None: no rule classifies it."""
    path = route.path
    if path == "/":
        return each(REDIRECT) if method == "get" else None
    if path == "/favicon.ico":
        return each(OK) if method == "get" else None
    if path == "/parts/" or path.startswith("/parts/"):
        return each(OK) if method == "get" else None  # the storefront: public pages
    if path == "/health/":
        return each(PUBLIC) if method == "get" else None
    if path == "/metrics":
        return each(OK, anonymous=FORBIDDEN) if method == "get" else None
    if path.startswith("/admin/"):
        return admin_rules(route, method)
    if path.startswith("/api/"):
        return api_rules(route, method)
    return None


# --------------------------------------------------------------------------- the test


def methods_of(route: Route) -> list[str]:
    if route.path.startswith("/api/"):
        return ["get", *WRITE_METHODS]
    if route.path.startswith("/admin/console/") or (
        route.model_admin is not None and route.name.endswith("_change")
    ):
        return ["get", "post"]
    return ["get"]


def request(client, method: str, path: str) -> HttpResponse:
    if method == "get":
        return client.get(path)
    # A harmless body: an empty JSON object (APIs) or an empty form (admin pages).
    if path.startswith("/api/"):
        return getattr(client, method)(path, data=json.dumps({}), content_type="application/json")
    return client.post(path, {})


def test_every_url_of_the_project_answers_each_role_as_the_rules_say(client_for):
    objects = make_world()
    routes = project_routes(objects)
    # NOTE: a server error is a wrong answer to report with the others, not an exception.
    clients = {role: client_for(role, raise_request_exception=False) for role in ROLE_NAMES}
    unclassified, wrong, checked = [], [], 0
    for route in sorted(routes, key=lambda r: r.path):
        if route.path in STREAMS:
            continue  # see test_streams_are_public
        for method in methods_of(route):
            anonymous = request(clients["anonymous"], method, route.path)
            # A method the endpoint does not offer: refused the same way for everybody.
            offered = anonymous.status_code != 405
            matrix = rules(route, method) if offered else each(NOT_ALLOWED)
            if matrix is None:
                unclassified.append(f"{method.upper()} {route.path} ({route.template})")
                continue
            for role in ROLE_NAMES:
                response = (
                    anonymous if role == "anonymous" else request(clients[role], method, route.path)
                )
                checked += 1
                if not matrix[role].check(response):
                    wrong.append(
                        f"{method.upper()} {route.path} as {role}: got "
                        f"{response.status_code}, expected {matrix[role].text}"
                    )
    assert not unclassified, "URLs no rule classifies (add a rule for them):\n" + "\n".join(
        unclassified
    )
    assert not wrong, "\n".join(wrong)
    assert checked > 500  # the walk really covered the admin's per-model URLs


def test_the_walk_finds_every_registered_model_and_both_apis(role_users):
    objects = make_world()
    paths = {route.path for route in project_routes(objects)}
    for key in ("buyer", "seller", "property", "customer", "order", "part", "run", "alert"):
        row = objects[key]
        meta = row._meta
        assert f"/admin/{meta.app_label}/{meta.model_name}/{row.pk}/change/" in paths
    assert {"/api/sync/status", "/api/parts", "/api/openapi.json"} <= paths
    assert f"/api/sync/progress/{objects['run'].pk}" in paths


def test_an_unclassified_url_fails_the_rules():
    route = Route("/brand-new/", "brand-new/", "brand_new")
    assert rules(route, "get") is None
    assert rules(Route("/api/brand-new", "api/brand-new", "x"), "get") is None
    assert rules(Route("/admin/brand-new/", "admin/brand-new/", "x"), "get") is None


def test_streams_are_public(client_for):
    """Server-Sent Events answer everybody; asked through the ASGI client (an async stream
    served synchronously is not how it runs), its body left unread."""
    routes = [r for r in project_routes(make_world()) if r.path in STREAMS]
    assert [r.path for r in routes] == sorted(STREAMS)
    for route in routes:
        for role in ROLE_NAMES:
            client = AsyncClient()
            client.cookies = client_for(role).cookies
            response = async_to_sync(client.get)(route.path)
            assert response.status_code == 200, (route.path, role)
            assert response.streaming

"""What a role cannot see it cannot infer, through a changelist's URL.

Django's admin applied any ``?field=…``, ``?field__icontains=…``, ``?field__regex=…`` (and
``?fk__field__…``) the query string named: a viewer rebuilt a customer's e-mail address from
result counts. The matrix: every registered admin model x every field (and every PII field
behind each relation) x lookup type x role, each asked once with a value that matches a
stored row and once with one that does not. Wherever the path reads personal data the role
may not see, both answers must be the same (status, count and rows); a lookup no declared
filter takes is a 400 for every role; a declared filter still filters.
"""

from __future__ import annotations

import re

import pytest
from django.contrib import admin
from django.contrib.admin.filters import FieldListFilter
from django.contrib.admin.utils import get_fields_from_path
from django.contrib.auth.models import User
from django.contrib.messages.storage.cookie import CookieStorage
from django.core.exceptions import FieldDoesNotExist, PermissionDenied, SuspiciousOperation
from django.db.models import Model
from django.http import Http404, HttpResponse
from django.test import Client, RequestFactory
from django.urls import resolve, reverse

from sync.console.lookups import pii_fields_of, touches_pii
from tests.console.conftest import CANARY, canary_values, make_staff_user, make_world

pytestmark = pytest.mark.django_db

ROLES = ("viewer", "operator", "pii_viewer", "superuser")
SEES_PII = {"viewer": False, "operator": False, "pii_viewer": True, "superuser": True}
LOOKUPS = ("exact", "icontains", "regex", "startswith", "isnull", "gt", "in")
MISS = "qzqzq-no-such-value"
ADMINS = sorted(admin.site._registry.items(), key=lambda item: item[0]._meta.label_lower)


def probes(lookup: str, value: object) -> tuple[str, str]:
    """(a value that matches ``value`` with this lookup, one that matches nothing)."""
    text = str(value)
    return {
        "exact": (text, text + MISS),
        "icontains": (text[1:5] or text, MISS),
        "regex": ("^" + re.escape(text[:3]), "^" + MISS),
        "startswith": (text[:3], MISS),
        "isnull": ("False", "True"),
        "gt": ("", "\uffff"),
        "in": (f"{text},{MISS}", f"{MISS},{MISS}2"),
    }[lookup]


def field_paths(model: type[Model]) -> list[str]:
    """Each concrete field, and each PII field one relation away (forward and reverse)."""
    paths = []
    for field in model._meta.get_fields():
        if field.concrete:
            paths.append(field.name)
        if field.is_relation and field.related_model is not None:
            paths += [
                f"{field.name}__{name}"
                for name in sorted(pii_fields_of(field.related_model, admin.site))
            ]
    return paths


def stored_value(model: type[Model], path: str) -> object:
    """A value some row holds at ``path`` (so the matching probe finds a row)."""
    try:
        value = (
            model._default_manager.exclude(**{f"{path}__isnull": True})
            .values_list(path, flat=True)
            .first()
        )
    except (FieldDoesNotExist, TypeError, ValueError):
        value = None
    return "x" if value in (None, "") else value


def outcome(response: HttpResponse) -> tuple:
    """What the answer tells: its status and, for a list, the count and the rows."""
    if response.status_code != 200:
        return (response.status_code,)
    cl = response.context_data["cl"]
    return (200, cl.result_count, tuple(obj.pk for obj in cl.result_list))


def declared_parameters(model_admin: admin.ModelAdmin, user: User) -> set[str]:
    """The parameters the list's filters (as this user gets them) and date links take."""
    request = RequestFactory().get("/")
    request.user = user
    keys: set[str] = set()
    for item in model_admin.get_list_filter(request):
        if isinstance(item, type):
            keys.add(item.parameter_name)
            continue
        path, make = item if isinstance(item, list | tuple) else (item, FieldListFilter.create)
        field = get_fields_from_path(model_admin.model, path)[-1]
        spec = make(field, request, {}, model_admin.model, model_admin, field_path=path)
        keys |= set(spec.expected_parameters())
    if model_admin.date_hierarchy:
        keys |= {f"{model_admin.date_hierarchy}__{part}" for part in ("year", "month", "day")}
    return keys


@pytest.fixture
def users(db, settings) -> dict[str, User]:
    # NOTE: a fast hasher: the users' passwords are never checked here (forced logins).
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    return {role: make_staff_user(role) for role in ROLES}


class Pages:
    """GETs a console URL as ``user`` through the admin's own view (its site's guards and
    permission checks included) without the middleware round trip or the rendering: the
    matrix asks thousands of questions, and the answer is in the changelist's context."""

    def __init__(self, user: User) -> None:
        self.user = user

    def get(self, url: str, params: dict | None = None) -> HttpResponse:
        request = RequestFactory().get(url, params or {})
        request.user = self.user
        request._messages = CookieStorage(request)
        match = resolve(request.path_info)
        try:
            return match.func(request, *match.args, **match.kwargs)
        except SuspiciousOperation:
            return HttpResponse(status=400)  # as Django's handler answers it
        except PermissionDenied:
            return HttpResponse(status=403)
        except Http404:
            return HttpResponse(status=404)


@pytest.fixture
def clients(users) -> dict[str, Pages]:
    return {role: Pages(user) for role, user in users.items()}


def changelist(model: type[Model]) -> str:
    meta = model._meta
    return reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist")


def canary_in(value: object) -> bool:
    text = str(value).lower()
    return any(canary.lower() in text for canary in CANARY.values())


def test_a_lookup_never_answers_from_pii_the_role_may_not_see(users, clients):
    make_world()
    problems: list[str] = []
    checked = 0
    for model, model_admin in ADMINS:
        found, asked = _probe_lookups(model, model_admin, users, clients)
        problems += [f"{model._meta.label}: {problem}" for problem in found]
        checked += asked
    assert not problems, f"{len(problems)} leaks or unrefused lookups:\n" + "\n".join(problems)
    assert checked > 2000  # every model's fields x lookups, for the roles that see its page


def _probe_lookups(
    model: type[Model],
    model_admin: admin.ModelAdmin,
    users: dict[str, User],
    clients: dict[str, Pages],
) -> tuple[list[str], int]:
    url = changelist(model)
    paths = field_paths(model)
    problems: list[str] = []
    checked = 0
    for role in ROLES:

        def get(params: dict, client: Pages = clients[role]) -> HttpResponse:
            return client.get(url, params)

        if get({}).status_code == 403:  # no page for this role: nothing to probe either
            refused = {
                get({f"{path}__exact": stored_value(model, path)}).status_code for path in paths
            }
            if refused != {403}:
                problems.append(f"{role}: some lookups answered {refused - {403}}")
            continue
        declared = declared_parameters(model_admin, users[role])
        for path in paths:
            value = stored_value(model, path)
            hidden = not SEES_PII[role] and (
                touches_pii(model, path, admin.site) or canary_in(value)
            )
            for lookup in LOOKUPS:
                key = f"{path}__{lookup}"
                hit, miss = probes(lookup, value)
                first = outcome(get({key: hit}))
                # Where nothing is hidden from the role, one refusal shows the lookup refused.
                answers = (
                    first,
                    first if not hidden and first == (400,) else outcome(get({key: miss})),
                )
                checked += 1
                if key not in declared and answers != ((400,), (400,)):
                    problems.append(
                        f"{role} ?{key}: {answers[0][:2]} / {answers[1][:2]} "
                        "(not a declared filter: 400 expected)"
                    )
                elif hidden and answers[0] != answers[1]:
                    problems.append(
                        f"{role} ?{key}: {answers[0][:2]} != {answers[1][:2]} "
                        "(the answer depends on PII the role may not see)"
                    )
    return problems, checked


def test_a_declared_filter_still_filters_and_an_undeclared_one_is_a_clear_400(users):
    objects = make_world()
    customers = changelist(type(objects["customer"]))
    viewer, pii_viewer = Client(), Client()
    viewer.force_login(users["viewer"], backend="django.contrib.auth.backends.ModelBackend")
    pii_viewer.force_login(users["pii_viewer"], backend="django.contrib.auth.backends.ModelBackend")
    assert outcome(viewer.get(customers, {"country": "NL"}))[1] == 1
    assert outcome(viewer.get(customers, {"country": "DE"}))[1] == 0
    assert outcome(viewer.get(customers, {"status__exact": "active"}))[1] == 1
    refused = viewer.get(customers, {"email__icontains": "zeb"})
    assert refused.status_code == 400
    page = refused.content.decode()
    assert "cannot be filtered by &#x27;email__icontains&#x27;" in page and "zeb" not in page
    # The PII role may see e-mail addresses but not filter by an undeclared lookup either.
    assert pii_viewer.get(customers, {"email__icontains": "zeb"}).status_code == 400
    # Through a relation, as Django allowed for list_filter paths: refused too.
    orders = changelist(type(objects["order"]))
    assert viewer.get(orders, {"customer__email__startswith": "z"}).status_code == 400
    # The date hierarchy's links are declared.
    assert outcome(viewer.get(orders, {"placed_at__year": objects["order"].placed_at.year}))[1] == 1


def test_a_search_never_answers_from_pii_the_role_may_not_see(clients):
    make_world()
    problems = []
    for model, _model_admin in ADMINS:
        url = changelist(model)
        terms = [
            (name, value)
            for name in sorted(pii_fields_of(model, admin.site))
            if (value := stored_value(model, name)) != "x"
        ]
        terms += [("canary", value) for value in canary_values()]
        for role in ("viewer", "operator"):
            client = clients[role]
            if client.get(url).status_code == 403:
                continue
            for name, value in terms:
                hit, miss = (outcome(client.get(url, {"q": q})) for q in (str(value), MISS))
                if hit != miss:
                    problems.append(
                        f"{model._meta.label} {role} q={value!r} ({name}): {hit[:2]} != {miss[:2]}"
                    )
    assert not problems, "\n".join(problems)


def test_the_pii_role_still_searches_personal_data(clients):
    objects = make_world()
    customers = changelist(type(objects["customer"]))
    assert outcome(clients["pii_viewer"].get(customers, {"q": CANARY["email"]}))[1] == 1
    assert outcome(clients["viewer"].get(customers, {"q": CANARY["email"]}))[1] == 0


def test_no_ordering_reads_pii_the_role_may_not_see(clients):
    make_world()
    problems = []
    for model, _model_admin in ADMINS:
        url = changelist(model)
        for role in ("viewer", "operator"):
            client = clients[role]
            first = client.get(url)
            if first.status_code == 403:
                continue
            columns = len(first.context_data["cl"].list_display)
            for o in ["", *(f"{sign}{i}" for i in range(columns) for sign in ("", "-"))]:
                response = client.get(url, {"o": o} if o else {})
                order_by = response.context_data["cl"].queryset.query.order_by
                problems += [
                    f"{model._meta.label} {role} ?o={o}: ordered by {entry}"
                    for entry in order_by
                    if isinstance(entry, str) and touches_pii(model, entry, admin.site)
                ]
    assert not problems, "\n".join(problems)


def test_a_masked_column_orders_nothing_for_a_viewer(clients):
    """Two customers whose names sort against their numbers: a viewer's list keeps the
    numbers' order whichever column they click (the PII role's follows the names)."""
    from customers.models import Customer

    Customer.objects.create(customer_number="C-1", name="Zed", email="z@x.example")
    Customer.objects.create(customer_number="C-2", name="Abe", email="a@x.example")
    url = changelist(Customer)
    name_column = list(admin.site._registry[Customer].list_display).index("name")
    for role, expected in (("viewer", ["C-1", "C-2"]), ("pii_viewer", ["C-2", "C-1"])):
        listed = clients[role].get(url, {"o": str(name_column + 1)}).context_data["cl"].result_list
        assert [c.customer_number for c in listed] == expected, role


def test_pii_bound_filters_dates_orderings_and_fields_are_dropped_without_the_pii_role(users):
    """An admin class that declares everything on personal data (a PII date too): a viewer's
    list keeps none of it, the PII role's keeps all of it."""
    from django.db.models import F
    from django.db.models.functions import Lower

    from customers.admin import OrderAdmin
    from customers.models import CUSTOMER_PII, Customer, Order
    from sync.console.admin.ops import AcknowledgedFilter
    from sync.console.admin_base import SyncedModelAdmin
    from sync.console.site import ConsoleAdminSite

    class LeakyCustomerAdmin(SyncedModelAdmin):
        pii_fields = (*CUSTOMER_PII, "created_at")
        list_filter = ("status", "city", ("email", admin.EmptyFieldListFilter), AcknowledgedFilter)
        date_hierarchy = "created_at"
        ordering = ("name", F("phone"), Lower("city").desc(), F("status").asc(), "customer_number")
        search_fields = ("customer_number", "=email", "orders__shipping_address")

    site = ConsoleAdminSite(name="leaky")
    site.register(Customer, LeakyCustomerAdmin)
    site.register(Order, OrderAdmin)
    model_admin = site._registry[Customer]
    Customer.objects.create(customer_number="C-1", name="Zed", city="Leeds", email="z@x.org")

    def request_as(role: str):
        request = RequestFactory().get("/")
        request.user = users[role]
        request._messages = CookieStorage(request)
        return request

    viewer, pii_viewer = request_as("viewer"), request_as("pii_viewer")
    assert model_admin.get_list_filter(viewer) == ["status", AcknowledgedFilter]
    assert model_admin.get_search_fields(viewer) == ["customer_number"]
    assert model_admin.to_field_allowed(viewer, "email") is False
    cl = model_admin.get_changelist_instance(viewer)
    assert cl.date_hierarchy is None
    assert {str(entry) for entry in cl.queryset.query.order_by} == {
        str(F("status").asc()),
        "customer_number",
    }

    assert len(model_admin.get_list_filter(pii_viewer)) == 4
    assert len(model_admin.get_search_fields(pii_viewer)) == 3
    assert model_admin.to_field_allowed(pii_viewer, "email") is False  # Django's own rule
    cl = model_admin.get_changelist_instance(pii_viewer)
    assert cl.date_hierarchy == "created_at"
    assert {"name", str(F("phone")), str(Lower("city").desc())} <= {
        str(entry) for entry in cl.queryset.query.order_by
    }


def test_autocomplete_never_answers_from_pii_the_role_may_not_see(clients):
    """The admin's autocomplete searches the target's search fields (as the role gets them):
    every relation of every admin model, asked with a stored PII value and with nothing."""
    make_world()
    problems = []
    for model, _model_admin in ADMINS:
        relations = [
            f
            for f in model._meta.get_fields()
            if f.is_relation and f.concrete and f.related_model in admin.site._registry
        ]
        for field in relations:
            target = field.related_model
            values = [
                stored_value(target, name) for name in sorted(pii_fields_of(target, admin.site))
            ]
            for role in ("viewer", "operator"):
                for value in [v for v in values if v != "x"] + list(CANARY.values()):
                    answers = []
                    for term in (str(value), MISS):
                        response = clients[role].get(
                            reverse("admin:autocomplete"),
                            {
                                "app_label": model._meta.app_label,
                                "model_name": model._meta.model_name,
                                "field_name": field.name,
                                "term": term,
                            },
                        )
                        answers.append(
                            (
                                response.status_code,
                                response.content if response.status_code == 200 else b"",
                            )
                        )
                    if answers[0] != answers[1]:
                        problems.append(
                            f"{model._meta.label}.{field.name} {role} term={value!r}: {answers}"
                        )
    assert not problems, "\n".join(problems)

"""Users of each console role, and logged-in clients for them.

The roles are the groups the data migration ``sync/0005_add_console_roles`` created: these
fixtures put a staff user in the real group, so a test exercises the same permission rows a
person would hold. ``client_for("viewer")`` (or ``"anonymous"``) gives a logged-in
``django.test.Client``; tests in this folder (admin, API, dashboard) share them.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.contrib.contenttypes.models import ContentType
from django.test import Client
from django.urls import URLResolver, get_resolver

from sync.access import roles

ROLE_NAMES = ("anonymous", "viewer", "operator", "pii_viewer", "superuser")
PASSWORD = "console-test-password"

_GROUPS = {"viewer": roles.VIEWER, "operator": roles.OPERATOR, "pii_viewer": roles.PII_VIEWER}


def ensure_role_groups() -> None:
    """The console's groups as the data migration makes them (idempotent): a transactional
    test earlier in the run flushed them with every other row."""
    if Group.objects.filter(name__in=list(roles.ROLES)).count() == len(roles.ROLES):
        return
    from django.apps import apps

    migration = importlib.import_module("sync.migrations.0005_add_console_roles")
    migration.create_roles(apps, None)


def make_staff_user(role: str, *, username: str | None = None) -> User:
    """A staff user holding ``role`` (``viewer``, ``operator``, ``pii_viewer`` or
    ``superuser``); ``staff`` gives a staff user without any console group."""
    username = username or f"{role}-user"
    if role == "superuser":
        return User.objects.create_superuser(username, f"{username}@staff.invalid", PASSWORD)
    user = User.objects.create_user(username, f"{username}@staff.invalid", PASSWORD, is_staff=True)
    if role in _GROUPS:
        ensure_role_groups()
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
    not logged in). Each call gives a fresh client; keyword arguments go to ``Client``
    (``enforce_csrf_checks=True`` for tests of CSRF)."""

    def build(role: str, **client_options: Any) -> Client:
        client = Client(**client_options)
        user = role_users[role]
        if user is not None:
            client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
        return client

    return build


# --------------------------------------------------------------------------- console rows

# PII planted in every personal field of every model a console page shows: no page may carry
# any of these to a user without the PII role (tests/console/test_admin_pii.py).
CANARY = {
    "name": "Zebulon Canarywright",
    "email": "zebulon.canary@pii-canary.example",
    "phone": "+1 555 0199 4242",
    "address": "77 Canary Lane, Birdtown",
    "notes": "canary-note-xyzzy",
    "street": "88 Canarystraat",
    "city": "Canaryville",
    "postal_code": "CN-90210",
    "shipping_address": "99 Canary Row, Shipton",
}


def canary_values() -> list[str]:
    """The canaries, and the parts of them a partial leak would show."""
    values = set(CANARY.values())
    values |= {
        CANARY["email"].split("@")[0],
        "pii-canary.example",
        "Canarywright",
        "0199 4242",
        "Canary Lane",
        "Canarystraat",
        "Canaryville",
        "Canary Row",
    }
    return sorted(values)


def make_console_rows(*, raw_free_text: bool = False) -> dict[str, object]:
    """One row of every model the console shows, its PII fields holding canaries; a run with
    a record log and an error log, an alert, both retry queues' entries, metrics and a
    staff action. Their free texts name PII too, redacted as the engine stores them, or
    (``raw_free_text``) as if a bug had stored them unredacted."""
    import datetime

    from django.utils import timezone

    from buyers.models import Buyer
    from catalog.models import Part
    from customers.models import Customer, Order
    from sellers.models import Property, Seller
    from sync.models import (
        ErrorLog,
        RecordLog,
        RecordRetry,
        SecurityEvent,
        StaffAction,
        SyncAlert,
        SyncConfig,
        SyncHealthMetric,
        SyncIntent,
        SyncMetric,
        SyncRun,
    )
    from sync.redaction import redact

    def text(value: str) -> str:
        return value if raw_free_text else redact(value)

    now = timezone.now()
    stamps = {"created_at": now, "synced_at": now, "db_updated_at": now}
    person = {k: CANARY[k] for k in ("name", "email", "phone", "address", "notes")}
    buyer = Buyer.objects.create(
        buyer_number="B-90001",
        status="active",
        budget=250000,
        inquiry_date=datetime.date(2026, 11, 2),
        **person,
        **stamps,
    )
    seller = Seller.objects.create(seller_number="CA90001", status="listed", **person, **stamps)
    prop = Property.objects.create(
        seller=seller, property_type="house", address=CANARY["address"], **stamps
    )
    customer = Customer.objects.create(
        customer_number="C-90001",
        **{k: CANARY[k] for k in ("name", "email", "phone", "street", "city", "postal_code")},
        country="NL",
    )
    order = Order.objects.create(
        order_number="O-90001",
        customer=customer,
        total=12,
        items=[{"sku": "SKU-1", "qty": 1, "price": "12.00"}],
        shipping_address=CANARY["shipping_address"],
        placed_at=now,
    )
    part = Part.objects.create(sku="SKU-CANARY-1", name="Canary bolt", price=1)
    run = SyncRun.objects.create(
        source="buyers",
        target="buyers.buyer",
        status=SyncRun.Status.PARTIAL,
        created_at=now - datetime.timedelta(seconds=4),
        started_at=now - datetime.timedelta(seconds=3),
        finished_at=now,
        rows_total=2,
        rows_done=2,
        created=1,
        failed=1,
        message=text(f"1 row failed for {CANARY['email']}"),
    )
    record = RecordLog.objects.create(
        run_id=run.pk,
        row_number=2,
        natural_key="B-90001",
        action=RecordLog.Action.CREATED,
        object_id=buyer.pk,
    )
    error = ErrorLog.objects.create(
        run_id=run.pk,
        source="buyers",
        category="schema",
        code="too_long",
        row_number=3,
        natural_key="B-90002",
        column="Email",
        value_length=300,
        column_limit=254,
        reason=text(f"value {CANARY['email']} too long, call {CANARY['phone']}"),
    )
    alert = SyncAlert.objects.create(
        alert_type="gaps",
        source="buyers",
        message=text(f"gap at {CANARY['email']}"),
        context={"keys": ["B-90002"], "who": text(CANARY["phone"])},
    )
    retry = RecordRetry.objects.create(
        source="buyers",
        natural_key="B-90002",
        category="network",
        last_error=text(f"timeout for {CANARY['email']}"),
        next_retry_at=now,
        last_run_id=run.pk,
    )
    # (The insert's trigger queued it; the test's transaction never commits.)
    intent = SyncIntent.objects.get(model="catalog.part", object_pk=str(part.pk))
    intent.last_error = text(f"cache down near {CANARY['email']}")
    intent.save(update_fields=["last_error"])
    # NOTE: staff addresses, not a customer's: the admin masks them (test_admin_pages), the
    # JSON API's configuration shows them to viewers.
    config = SyncConfig.objects.create(source="buyers", recipients="ops@staff.example")
    metric = SyncMetric.objects.create(
        run_id=run.pk,
        source="buyers",
        status="partial",
        finished_at=now,
        duration_seconds=3.0,
        rows_total=2,
        failed=1,
    )
    health = SyncHealthMetric.objects.create(
        source="buyers", sheet_count=2, database_count=1, gaps=1
    )
    action = StaffAction.objects.create(
        username="someone",
        action="cache.resync",
        target="buyers.buyer",
        details={"rows": 1},
        ip="10.0.0.1",
    )
    security_event = SecurityEvent.objects.create(
        kind="denied",
        username="someone",
        ip="10.0.0.1",
        path="/api/sync/config",
        status_code=403,
        details={"method": "PUT"},
    )
    return {
        "buyer": buyer,
        "seller": seller,
        "property": prop,
        "customer": customer,
        "order": order,
        "part": part,
        "run": run,
        "record": record,
        "error": error,
        "alert": alert,
        "retry": retry,
        "intent": intent,
        "config": config,
        "metric": metric,
        "health": health,
        "action": action,
        "security_event": security_event,
    }


def make_world(*, raw_free_text: bool = False) -> dict[str, object]:
    """``make_console_rows`` and a row for every other model with admin pages (django-celery-
    beat's schedules, django-axes' logs): a real row behind every URL parameter."""
    from axes.models import AccessAttempt, AccessFailureLog, AccessLog
    from django.utils import timezone
    from django_celery_beat.models import ClockedSchedule, CrontabSchedule, SolarSchedule

    from sync.ops.source_settings import config_for

    objects = make_console_rows(raw_free_text=raw_free_text)
    config_for("engine")  # its beat entry: a periodic task and an interval schedule
    _catalog_rows(objects["part"])
    CrontabSchedule.objects.create(minute="0")
    SolarSchedule.objects.create(event="sunrise", latitude=52, longitude=4)
    ClockedSchedule.objects.create(clocked_time=timezone.now())
    fields = {
        "user_agent": "test",
        "ip_address": "10.0.0.9",
        "username": "nobody",
        "http_accept": "*/*",
        "path_info": "/admin/login/",
    }
    AccessAttempt.objects.create(**fields, get_data="", post_data="", failures_since_start=1)
    AccessLog.objects.create(**fields)
    AccessFailureLog.objects.create(**fields)
    return objects


def _catalog_rows(part) -> None:
    """The catalog's read-only admin pages (stock level, content version, change log)."""
    from catalog.models import CatalogChange, PartContentVersion, StockLevel

    StockLevel.objects.create(part=part, quantity=3)
    PartContentVersion.objects.create(
        part=part, number=1, snapshot=part.content(), part_version=part.version
    )
    CatalogChange.objects.create(part=part, action="create", changes={}, version=part.version)


@pytest.fixture
def console_rows(db) -> dict[str, object]:
    return make_console_rows()


# --------------------------------------------------------------------------- every URL


@dataclass(frozen=True)
class Route:
    """One concrete URL of the project, as the resolver knows it."""

    path: str  # concrete, e.g. /admin/buyers/buyer/3/change/
    template: str  # as declared, e.g. admin/buyers/buyer/<path:object_id>/change/
    name: str  # URL name without namespace ("" when unnamed)
    model_admin: Any = None  # the ModelAdmin serving it, for the admin's per-model URLs

    @property
    def label(self) -> str:
        return self.model_admin.model._meta.label_lower if self.model_admin else ""


class UnfillableParameterError(LookupError):
    """A URL parameter the walker has no real value for: teach ``fill_parameter``."""


_ROUTE_PARAM = re.compile(r"<(?:(?P<converter>[^>:]+):)?(?P<name>\w+)>")
_REGEX_GROUP = re.compile(r"\(\?P<(?P<name>\w+)>(?P<body>[^)]*)\)")


def fill_parameter(name: str, model_admin: Any, objects: dict[str, Any]) -> list[str]:
    """Real values for one URL parameter (several for an alternation such as app labels)."""
    part = objects["part"]
    if name == "object_id" and model_admin is not None:
        row = model_admin.model._default_manager.order_by("pk").first()
        if row is None:
            msg = f"no row of {model_admin.model._meta.label} to fill <object_id>: create one"
            raise UnfillableParameterError(msg)
        return [str(row.pk)]
    fixed: dict[str, Callable[[], object]] = {
        "content_type_id": lambda: ContentType.objects.get_for_model(type(part)).pk,
        "object_id": lambda: part.pk,  # the view_on_site shortcut's object: a part
        "id": lambda: User.objects.order_by("pk").values_list("pk", flat=True)[0],  # password
        "run_id": lambda: objects["run"].pk,
        "upload_id": lambda: _an_upload(objects).pk,
        "alert_id": lambda: objects["alert"].pk,
        "source": lambda: "buyers",
        "part_id": lambda: part.pk,
        "number": lambda: 1,
        "url": lambda: "no-such-page/",
    }
    if name not in fixed:
        msg = f"no real value for URL parameter <{name}>: add one to fill_parameter"
        raise UnfillableParameterError(msg)
    return [str(fixed[name]())]


def _an_upload(objects: dict[str, Any]) -> Any:
    """A console upload previewed by the world's run (its content purged: nothing to read)."""
    from sync.models import SyncUpload

    if "upload" not in objects:
        objects["upload"] = SyncUpload.objects.create(
            source="buyers",
            filename="buyers.csv",
            size=1,
            sha256="0" * 64,
            token="00000000-0000-4000-8000-000000000015",
            key_id="k",
            content=b"",
            uploaded_by="someone",
            preview_run_id=objects["run"].pk,
        )
    return objects["upload"]


def _fill_piece(piece: str, model_admin: Any, objects: dict[str, Any]) -> list[str]:
    if piece.startswith("^") or piece.endswith("$"):  # a regex (re_path)
        piece = piece.removeprefix("^").removesuffix("$")
        match = _REGEX_GROUP.search(piece)
        if match is None:
            return [piece]
        values = (
            match.group("body").split("|")
            if match.group("name") == "app_label"
            else fill_parameter(match.group("name"), model_admin, objects)
        )
        return [
            filled
            for value in values
            for filled in _fill_piece(
                piece[: match.start()] + value + piece[match.end() :], model_admin, objects
            )
        ]
    match = _ROUTE_PARAM.search(piece)
    if match is None:
        return [piece]
    return [
        filled
        for value in fill_parameter(match.group("name"), model_admin, objects)
        for filled in _fill_piece(
            piece[: match.start()] + value + piece[match.end() :], model_admin, objects
        )
    ]


def project_routes(objects: dict[str, Any]) -> list[Route]:
    """Every URL of the project from the resolver (``include``s and the admin's per-model
    URLs walked), parameters filled with real objects; one route per concrete path."""
    found: dict[str, Route] = {}

    def walk(patterns, pieces: list[str]) -> None:
        for pattern in patterns:
            here = [*pieces, str(pattern.pattern)]
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, here)
                continue
            model_admin = getattr(pattern.callback, "model_admin", None)
            paths = [""]
            for piece in here:
                paths = [
                    p + filled for p in paths for filled in _fill_piece(piece, model_admin, objects)
                ]
            for path in paths:
                found.setdefault(
                    "/" + path, Route("/" + path, "".join(here), pattern.name or "", model_admin)
                )

    walk(get_resolver().url_patterns, [])
    return list(found.values())

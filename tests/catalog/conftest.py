"""Catalog fixtures: parts made through the service (stock level and content v1 included),
clients per console role, a raw Redis client, and clean engine state per test."""

from __future__ import annotations

import itertools
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.contrib.contenttypes.models import ContentType
from django.test import Client

from catalog import services
from catalog.models import Part
from sync.access import roles
from sync.models import StaffAction
from tests import engine_fixtures

# The engine's shared fixtures (tests/engine_fixtures.py): fresh_engine_state is autouse.
fresh_engine_state = engine_fixtures.fresh_engine_state
redis_raw = engine_fixtures.redis_raw

_seq = itertools.count(1)


def new_part(**overrides) -> Part:
    n = next(_seq)
    fields = {
        "sku": f"CAT-{n:06d}",
        "name": f"Catalog part {n}",
        "price": Decimal("12.50"),
        "description": "<p>A part</p>",
        "specifications": {"thread": "M6"},
        "images": [f"https://img.example.com/{n}.jpg"],
        "quantity": 10,
        "reserved": 2,
    }
    fields.update(overrides)
    return services.part_create(**fields)


@pytest.fixture
def make_part(db):
    return new_part


def role_group(name: str) -> Group:
    """The console group, re-created when a transactional test's flush removed it (the
    migration that makes it does not run again; the permission rows do come back)."""
    group, created = Group.objects.get_or_create(name=name)
    if created:
        ctype = ContentType.objects.get_for_model(StaffAction)
        for codename in roles.ROLES[name]:
            permission, _ = Permission.objects.get_or_create(
                content_type=ctype, codename=codename, defaults={"name": codename}
            )
            group.permissions.add(permission)
    return group


def user_with(role: str | None, username: str) -> User:
    user = User.objects.create_user(username, password="catalog-test-password", is_staff=True)
    if role:
        user.groups.add(role_group(role))
    return user


@pytest.fixture
def operator_client(db) -> Client:
    client = Client()
    client.force_login(user_with(roles.OPERATOR, "catalog-operator"))
    return client


@pytest.fixture
def viewer_client(db) -> Client:
    client = Client()
    client.force_login(user_with(roles.VIEWER, "catalog-viewer"))
    return client

"""I2: versions come from PostgreSQL on every kind of write, monotonic per key."""

from __future__ import annotations

import pytest
from django.db import connection

from catalog.models import Part
from tests.factories import make_part

pytestmark = pytest.mark.django_db


def test_insert_gets_database_assigned_version_and_timestamp() -> None:
    part = make_part()
    assert part.version > 0
    assert part.updated_at_ns > 1_700_000_000 * 10**9  # nanoseconds of a real clock


def test_every_write_path_draws_a_new_version() -> None:
    part = make_part()
    versions = [part.version]
    part.price = 1
    part.save()
    part.refresh_from_db()
    versions.append(part.version)
    Part.objects.filter(pk=part.pk).update(price=2)  # bypasses signals
    part.refresh_from_db()
    versions.append(part.version)
    with connection.cursor() as cursor:  # bypasses Django entirely
        cursor.execute("UPDATE catalog_parts SET price = 3 WHERE id = %s", [part.pk])
    part.refresh_from_db()
    versions.append(part.version)
    assert versions == sorted(set(versions)), versions


def test_application_cannot_choose_the_version() -> None:
    part = make_part()
    Part.objects.filter(pk=part.pk).update(version=1)
    part.refresh_from_db()
    assert part.version > 1


def test_version_monotonic_across_delete_and_recreate_with_same_key() -> None:
    part = make_part(sku="RECREATE")
    pk, first = part.pk, part.version
    part.delete()
    again = Part.objects.create(pk=pk, sku="RECREATE", name="again", price=1)
    assert again.version > first
    with connection.cursor() as cursor:
        cursor.execute("SELECT version FROM sync_retry_queue WHERE object_pk = %s", [str(pk)])
        (intent_version,) = cursor.fetchone()
    # the delete's tombstone version sits between the two lives of the key
    assert first < intent_version <= again.version

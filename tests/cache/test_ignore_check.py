"""The triggers' ignore check (sync.cache.ignore_check): installed after migrate, the same
answers as pgtrigger's own, and pgtrigger.ignore() still skips exactly the triggers named."""

from __future__ import annotations

import pgtrigger
import pytest
from django.db import connection, transaction

from catalog.models import Part
from sync.cache import ignore_check
from sync.models import SyncIntent
from tests.factories import make_part

pytestmark = pytest.mark.django_db(transaction=True)


def _language() -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT l.lanname FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang"
            " WHERE p.proname = '_pgtrigger_should_ignore'"
        )
        return cursor.fetchone()[0]


def _answer(setting: str | None) -> bool:
    with transaction.atomic(), connection.cursor() as cursor:
        if setting is not None:
            cursor.execute("SELECT set_config('pgtrigger.ignore', %s, true)", [setting])
        cursor.execute("SELECT public._pgtrigger_should_ignore('pgtrigger_a_1')")
        return cursor.fetchone()[0]


def test_installed_after_migrate_and_answers_like_pgtriggers_own() -> None:
    assert _language() == "sql"  # the test database was migrated: post_migrate installed it
    ignore_check.install()  # idempotent
    assert [
        _answer(s) for s in (None, "", "{}", "{pgtrigger_b_2}", "{pgtrigger_b_2,pgtrigger_a_1}")
    ] == [False, False, False, False, True]


def test_pgtrigger_ignore_still_skips_exactly_the_triggers_it_names() -> None:
    with transaction.atomic():  # intents seen before commit (the write-through settles them)
        with pgtrigger.ignore("catalog.Part:sync_enqueue_intent"):
            skipped = make_part()
        kept = make_part()
        pending = set(SyncIntent.objects.values_list("object_pk", flat=True))
        assert (str(skipped.pk) in pending, str(kept.pk) in pending) == (False, True)
        skipped.refresh_from_db()
        assert skipped.version > 0  # the version trigger was not skipped
    assert Part.objects.count() == 2

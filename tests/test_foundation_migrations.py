"""Every migration applies, reverses to zero and applies again; models and migrations agree."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.loader import MigrationLoader

# Apps whose migrations cannot be reversed, each with the reason. Keep it empty if you can.
IRREVERSIBLE: dict[str, str] = {}


def _unapplied() -> list[str]:
    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    return [f"{migration.app_label}.{migration.name}" for migration, _ in plan]


def _schema_objects() -> list[tuple[str, str]]:
    """Sequences and functions in the public schema that no extension owns.

    NOTE: django-pgtrigger drops its triggers on reversal but by design never its functions
    (``CREATE OR REPLACE`` makes them harmless on reinstall), so those are not counted.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT c.relkind::text, c.relname FROM pg_class c
              JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = 'public' AND c.relkind = 'S'
               AND c.relname <> 'django_migrations_id_seq'
            UNION ALL
            SELECT 'f', p.proname FROM pg_proc p
              JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE n.nspname = 'public' AND p.proname NOT LIKE '%pgtrigger%'
               AND NOT EXISTS (SELECT 1 FROM pg_depend d
                                WHERE d.objid = p.oid AND d.deptype = 'e')
            """
        )
        return cursor.fetchall()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_every_app_migrates_to_zero_and_back() -> None:
    out = StringIO()
    labels = sorted(MigrationLoader(connection).migrated_apps - IRREVERSIBLE.keys())
    assert {"sync", "auth", "django_celery_beat", "axes"} <= set(labels)
    tables = set(connection.introspection.table_names())

    for label in labels:
        call_command("migrate", label, "zero", interactive=False, verbosity=0, stdout=out)

    leftover = set(connection.introspection.table_names()) - {"django_migrations"}
    assert leftover == set(), "tables a reversed migration left behind"
    assert _schema_objects() == [], "sequences/functions a reversed migration left behind"
    assert not IRREVERSIBLE or _unapplied()

    call_command("migrate", interactive=False, verbosity=0, stdout=out)

    assert _unapplied() == []
    assert set(connection.introspection.table_names()) == tables


@pytest.mark.django_db
def test_no_model_change_lacks_a_migration() -> None:
    out = StringIO()
    try:
        call_command("makemigrations", "--check", "--dry-run", verbosity=1, stdout=out)
    except SystemExit as exit_:
        pytest.fail(
            f"makemigrations would create migrations (exit {exit_.code}):\n{out.getvalue()}"
        )

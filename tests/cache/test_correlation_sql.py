"""What ``sync.cache.correlation`` sends: a write made in a request or task sets the id for its
transaction first, in the same query string (what ``sync_retry_queue.request_id`` reads back);
a read, a write outside both, and an id that could break out of the literal are sent unchanged.
The cursor still answers for the write itself (rowcount, RETURNING)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from django.db import connection, transaction

from sync.access import request_id
from sync.cache import correlation


@pytest.fixture
def current_id():
    tokens = []

    def use(value: str) -> None:
        tokens.append(request_id.current.set(value))

    yield use
    for token in reversed(tokens):
        request_id.current.reset(token)


PROBE = (
    "CREATE TEMP TABLE corr_probe (id int, r varchar(64) "
    "DEFAULT COALESCE(current_setting('syncops.request_id', true), ''))"
)


def recorded(cursor) -> list[tuple]:
    cursor.execute("SELECT id, r FROM corr_probe ORDER BY id")
    return cursor.fetchall()


@pytest.mark.django_db(transaction=True)
def test_each_write_carries_the_id_of_the_request_or_task_that_made_it(current_id) -> None:
    with connection.cursor() as cursor:
        cursor.execute(PROBE)
        current_id("req-1")
        cursor.execute("INSERT INTO corr_probe (id) VALUES (%s) RETURNING id", [1])
        assert cursor.fetchall() == [(1,)]  # the write answers for itself
        cursor.execute("  insert into corr_probe (id) VALUES (2)")
        current_id("task-2")
        cursor.executemany("INSERT INTO corr_probe (id) VALUES (%s)", [(3,), (4,)])
        current_id("-")  # a shell: no request, no task
        cursor.execute("INSERT INTO corr_probe (id) VALUES (5)")
        current_id("x'); DROP TABLE t; --")  # never set by sync.access.request_id; never sent
        cursor.execute("INSERT INTO corr_probe (id) VALUES (6)")
        assert recorded(cursor) == [
            (1, "req-1"),
            (2, "req-1"),
            (3, "task-2"),
            (4, "task-2"),
            (5, ""),
            (6, ""),
        ]


def insert(pk: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO corr_probe (id) VALUES (%s)", [pk])


@pytest.mark.django_db(transaction=True)
def test_a_setting_undone_by_a_rollback_is_set_again(current_id) -> None:
    with connection.cursor() as cursor:
        cursor.execute(PROBE)
    current_id("req-a")
    with transaction.atomic():
        try:
            with transaction.atomic():
                insert(0)  # req-a first set inside a savepoint that rolls back
                raise RuntimeError  # rolls the savepoint back
        except RuntimeError:
            pass
        insert(1)  # after ROLLBACK TO SAVEPOINT: set again
    current_id("req-b")
    try:
        with transaction.atomic():
            insert(0)  # req-b set inside a transaction that rolls back
            raise RuntimeError  # rolls the transaction back
    except RuntimeError:
        pass
    insert(3)  # the rollback undid req-b: set again
    with connection.cursor() as cursor:
        assert recorded(cursor) == [(1, "req-a"), (3, "req-b")]


def test_installed_once_per_postgresql_connection_only() -> None:
    conn = SimpleNamespace(vendor="postgresql", execute_wrappers=[])
    correlation.install(connection=conn)
    correlation.install(connection=conn)
    assert len(conn.execute_wrappers) == 1
    other = SimpleNamespace(vendor="sqlite", execute_wrappers=[])
    correlation.install(connection=other)
    correlation.install()
    assert other.execute_wrappers == []

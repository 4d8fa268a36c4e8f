"""The correlation id into the outbox intent: an intent says which request or task
wrote the row it is for, so the retry queue and ``sync_inspect`` lead to that request's log lines.

The intents are written by a PostgreSQL trigger, which cannot see Python's context, so the id
is handed to the server as a setting of the connection, ``syncops.request_id``, and
``sync_retry_queue.request_id`` defaults to it (one look-up per intent, whatever the statement's
size). It is set lazily: before a write (``INSERT``/``UPDATE``/``DELETE``/``WITH``/``MERGE``,
``executemany`` too) when the connection's setting is not the current request's or task's id —
that is, once per request or task that writes, on its first write (one ``SELECT set_config``,
~0.1 ms locally: docs/operations.md). Reads never pay, and nor do a request's further writes.
A write outside any request and task clears a setting left by an earlier one, so it is never
attributed to a stranger.

Rolled back: a setting made inside a transaction is undone if the transaction (or the savepoint
it was made in) rolls back, so it is forgotten — and set again at the next write — when that
transaction is over (psycopg finds the connection idle) or a ``ROLLBACK TO SAVEPOINT`` passes.

Rejected (measured): the ``set_config`` sent in the write's own query string (no statement of
its own, but every traced write is named "SELECT" and the cursor must be moved on to the
write's result), and a SQL comment read back with ``current_query()`` (a copy of the whole
statement's text per intent row: quadratic for a bulk write).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from psycopg.pq import TransactionStatus

from sync.access.request_id import correlation_id

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper

SETTING = "syncops.request_id"
_SAFE = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_WRITES = ("INSERT", "UPDATE", "DELETE", "WITH", "MERGE")


def _wanted() -> str:
    """The id writes must carry now ("" outside any request and task; an id not of the safe
    alphabet is never sent)."""
    request_id = correlation_id()
    return request_id if request_id and _SAFE.fullmatch(request_id) else ""


def _wrapper(
    execute: Callable[..., Any], sql: str, params: Any, many: bool, context: dict[str, Any]
) -> Any:
    connection = context["connection"]
    head = sql.lstrip()[:8].upper()
    if head.startswith("ROLLBACK") or (
        getattr(connection, "syncops_tentative", False)
        and connection.connection.info.transaction_status == TransactionStatus.IDLE
    ):
        connection.syncops_request_id = None  # set in a transaction now over: maybe undone
    if head.startswith(_WRITES):
        wanted = _wanted()
        if getattr(connection, "syncops_request_id", "") != wanted:
            with connection.connection.cursor() as cursor:  # the raw cursor: not wrapped again
                cursor.execute("SELECT set_config(%s, %s, false)", [SETTING, wanted])
            connection.syncops_request_id = wanted
            connection.syncops_tentative = (
                connection.connection.info.transaction_status != TransactionStatus.IDLE
            )
    return execute(sql, params, many, context)


def install(
    sender: object = None, connection: BaseDatabaseWrapper | None = None, **_extra: object
) -> None:
    """``connection_created`` receiver: every new PostgreSQL connection tags its writes."""
    if (
        connection is not None
        and connection.vendor == "postgresql"
        and _wrapper not in connection.execute_wrappers
    ):
        connection.execute_wrappers.append(_wrapper)

"""pgtrigger's ignore check, without its per-call subtransaction (a performance fix).

Every pgtrigger trigger function starts with ``public._pgtrigger_should_ignore(TG_NAME)``,
which pgtrigger writes in PL/pgSQL with a ``BEGIN … EXCEPTION`` block: a subtransaction on
every call, ~12 µs, two or three times per synced row written (the version trigger, the
outbox trigger, and the update half of an upsert), more than the triggers' own work. This
is the same function as one SQL expression (inlined into the trigger's ``IF``, ~0.5 µs):
``pgtrigger.ignore`` unset, empty or naming other triggers → false, naming this one → true.

pgtrigger re-creates its version whenever it installs a trigger (in any app's migration),
so this is installed after every ``migrate`` (``post_migrate``), not by one migration.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import connections

if TYPE_CHECKING:
    from django.apps import AppConfig

FAST_IGNORE_CHECK = """
CREATE OR REPLACE FUNCTION public._pgtrigger_should_ignore(trigger_name name)
RETURNS boolean LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce(
        trigger_name = ANY(nullif(current_setting('pgtrigger.ignore', true), '')::text[]),
        false)
$$
"""


def install(using: str = "default") -> None:
    """Replace pgtrigger's ignore check with the equivalent SQL function (idempotent)."""
    conn = connections[using]
    if conn.vendor != "postgresql":  # pragma: no cover - the project runs on PostgreSQL only
        return
    with conn.cursor() as cursor:
        cursor.execute(FAST_IGNORE_CHECK)


def after_migrate(sender: AppConfig, using: str = "default", **kwargs: object) -> None:
    """``post_migrate`` receiver (sent once per app: installing once per ``migrate`` would
    do; the statement is idempotent and cheap)."""
    if sender.name == "sync":
        install(using)

"""The same-work floor of ingestion: the rows a run writes, through the minimum set-based path.

A throughput alone says little on two shared cores (the same pipeline gave 11.4k rows/s quiet
and 8.8k at load 2.5), and plain ``COPY`` does not move with the machine the way the pipeline
does. So ``bench/ingest.py`` measures, in the same run and on the same servers, the same rows
through the least work that leaves the database and Redis as a run leaves them, with no
per-row Python but building the Redis pipeline's argument tuples:

new rows (``new``), one transaction:
  1. ``COPY`` of the CSV file into a temporary staging table (text columns, a row number);
  2. one statement: ``INSERT INTO buyers … SELECT`` (casts to numeric and date) ``ON CONFLICT
     (buyer_number) DO UPDATE … WHERE … IS DISTINCT FROM`` with the version trigger on (it
     assigns ``version`` and ``updated_at_ns`` row by row, as for the pipeline) and the
     enqueue trigger skipped (``pgtrigger.ignore``, as the pipeline's statement does), the
     outbox ``INSERT … SELECT … ON CONFLICT`` into ``sync_retry_queue`` (the same coalescing
     as the trigger, ``outbox.enqueue_sql``), the record-log ``INSERT … SELECT`` into
     ``sync_record_logs``; it answers each written row's cache key, version, TTL and payload,
     built by PostgreSQL (byte-identical to ``sync.cache.codec.seal`` for buyers: checked);
  3. ``COMMIT``;
  4. one pipelined ``EVALSHA`` of ``lua/cas_write.lua`` per row on the engine's client
     (``store.eval_many``, the write-through's own call, without the data-loss marker);
  5. the ``DELETE`` of the intents the write completed (the pipeline deletes them too, in a
     later batch's statement), and its commit.

unchanged rows (``unchanged``), what a run must do for a sheet that matches the table:
  1. ``COPY`` as above;
  2. one statement: every staged row compared with the table by key (the pipeline's
     comparison: its values ``IS NOT DISTINCT FROM`` the row's), the record logs of the
     unchanged ones inserted, the count of the others answered (0);
  3. ``COMMIT`` (no Redis work: nothing changed).

Used by ``bench/ingest.py``; nothing under ``sync/`` runs it.
"""

from __future__ import annotations

import time
from pathlib import Path

from devtools.sheets import BUYER_FIELDS

LABEL = "buyers.buyer"
COLUMNS = len(BUYER_FIELDS)
TYPES = {"budget": "numeric", "inquiry_date": "date"}


def _q(name: str) -> str:
    return f'"{name}"'


def _cast(position: int, name: str) -> str:
    value = f"nullif(s.c{position}, '')" if name in TYPES else f"s.c{position}"
    return f"{value}::{TYPES.get(name, 'text')}"


def _json(expression: str, field) -> str:
    """``expression`` as ``codec.encode_values`` writes that field's value (compact JSON)."""
    from django.db import models

    if isinstance(field, models.DateTimeField):
        # Python's isoformat: six digits of microseconds, none when they are 0; UTC.
        text = (
            f"to_char({expression} AT TIME ZONE 'UTC', CASE WHEN extract(microseconds FROM "
            f'{expression})::bigint %% 1000000 = 0 THEN \'YYYY-MM-DD"T"HH24:MI:SS"+00:00"\' '
            'ELSE \'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"\' END)'
        )
    elif isinstance(field, models.DecimalField | models.DateField):
        text = f"{expression}::text"
    else:
        text = expression
    return f"coalesce(to_json({text})::text, 'null')"


class Floor:
    """The floor's statements for the buyers table, and their timings (seconds by phase)."""

    def __init__(self) -> None:
        from buyers.models import Buyer
        from sync.cache.declaration import spec_for
        from sync.cache.outbox import enqueue_sql, enqueue_trigger_ids

        self.spec = spec_for(LABEL)
        self.ignore = "{" + ",".join(enqueue_trigger_ids([Buyer])) + "}"
        table = Buyer._meta.db_table
        columns = [Buyer._meta.get_field(name).column for name in BUYER_FIELDS]
        values = ", ".join(_cast(i, name) for i, name in enumerate(BUYER_FIELDS))
        assignments = ", ".join(f"{_q(c)} = EXCLUDED.{_q(c)}" for c in columns[1:])
        here = ", ".join(f"t.{_q(c)}" for c in columns[1:])
        there = ", ".join(f"EXCLUDED.{_q(c)}" for c in columns[1:])
        cached = [Buyer._meta.get_field(name) for name in self.spec.fields]
        payload = " || ',' || ".join(_json(f"t.{_q(f.column)}", f) for f in cached)
        from django.conf import settings

        prefix = f"{settings.SYNC_KEY_PREFIX}:{LABEL}:"
        ttl = f"({self.spec.ttl * 1000} * (1 + random() * {self.spec.ttl_jitter}))::bigint"
        self.new_sql = (
            "WITH up AS ("  # noqa: S608 - the model's own names
            f"INSERT INTO {table} AS t ({', '.join(map(_q, columns))}, created_at, synced_at, "
            "db_updated_at, version, updated_at_ns) "
            f"SELECT {values}, now(), now(), now(), 0, 0 FROM floor_stage s "
            f"ON CONFLICT (buyer_number) DO UPDATE SET {assignments}, "
            "synced_at = EXCLUDED.synced_at, db_updated_at = EXCLUDED.db_updated_at "
            f"WHERE ({here}) IS DISTINCT FROM ({there}) "
            "RETURNING t.id, t.version AS v, t.buyer_number AS k, (t.xmax = 0) AS inserted, "
            f"'[' || {payload} || ']' AS payload), "
            f"q AS ({enqueue_sql(LABEL, 'up', 'id', 'v')}), "
            "logs AS (INSERT INTO sync_record_logs (run_id, row_number, natural_key, action, "
            "object_id) SELECT %s, s.rn, s.c0, CASE WHEN up.inserted THEN 'created' "
            "ELSE 'updated' END, up.id FROM floor_stage s JOIN up ON up.k = s.c0) "
            f"SELECT '{prefix}' || up.id, up.v, up.payload, {ttl} FROM up"
        )
        compared = ", ".join(_cast(i, name) for i, name in enumerate(BUYER_FIELDS) if i)
        self.unchanged_sql = (
            "WITH c AS (SELECT s.rn, s.c0, t.id, "  # noqa: S608 - the model's own names
            f"t.id IS NOT NULL AND ({here}) IS NOT DISTINCT FROM ({compared}) AS same "
            f"FROM floor_stage s LEFT JOIN {table} t ON t.buyer_number = s.c0), "
            "logs AS (INSERT INTO sync_record_logs (run_id, row_number, natural_key, action, "
            "object_id) SELECT %s, c.rn, c.c0, 'unchanged', c.id FROM c WHERE c.same) "
            "SELECT count(*) FILTER (WHERE NOT c.same) FROM c"
        )
        self.phases: dict[str, float] = {}

    def _stage(self, cursor, path: Path) -> None:
        text = ", ".join(f"c{i} text" for i in range(COLUMNS))
        # NOTE: rn is the sheet's row number (the header is row 1), in file order.
        cursor.execute(
            "CREATE TEMP TABLE IF NOT EXISTS floor_stage "
            f"(rn integer GENERATED ALWAYS AS IDENTITY (START WITH 2), {text})"
        )
        cursor.execute("TRUNCATE floor_stage RESTART IDENTITY")
        names = ", ".join(f"c{i}" for i in range(COLUMNS))
        with (
            path.open("rb") as handle,
            # NOTE: an empty cell is '' (as the pipeline reads it), not NULL.
            cursor.copy(
                f"COPY floor_stage ({names}) FROM STDIN "
                f"WITH (FORMAT csv, HEADER true, FORCE_NOT_NULL ({names}))"
            ) as copy,
        ):
            while data := handle.read(1 << 20):
                copy.write(data)
        cursor.execute("ANALYZE floor_stage")

    def _timed(self, phase: str, started: float) -> float:
        now = time.perf_counter()
        self.phases[phase] = self.phases.get(phase, 0.0) + now - started
        return now

    def new(self, path: Path, run_id: int) -> int:
        """The floor of new (or changed) rows; answers the rows written."""
        from django.db import connection, transaction

        from sync.cache import connection as redis_connection
        from sync.cache import store

        self.phases = {}
        t = time.perf_counter()
        with transaction.atomic(), connection.cursor() as cursor:
            self._stage(cursor, path)
            t = self._timed("copy", t)
            cursor.execute("SELECT set_config('pgtrigger.ignore', %s, true)", [self.ignore])
            cursor.execute(self.new_sql, [run_id])
            written = cursor.fetchall()
            t = self._timed("statement", t)
        t = self._timed("commit", t)
        now_ms = int(time.time() * 1000)
        calls = [
            (key, [v, payload, "", "0", ttl, "0", "w", now_ms]) for key, v, payload, ttl in written
        ]
        redis_connection.run(
            lambda client: store.eval_many(client, "cas_write", calls, wait=True), bulk=True
        )
        t = self._timed("redis", t)
        with connection.cursor() as cursor:
            cursor.execute(
                "DELETE FROM sync_retry_queue q USING unnest(%s::text[], %s::bigint[]) "
                "AS d(pk, version) WHERE q.model = %s AND q.object_pk = d.pk "
                "AND q.version <= d.version",
                [
                    [key.rsplit(":", 1)[1] for key, *_ in written],
                    [row[1] for row in written],
                    LABEL,
                ],
            )
        self._timed("settle", t)
        return len(written)

    def unchanged(self, path: Path, run_id: int) -> int:
        """The floor of a sheet whose rows all match the table; answers the rows changed
        (0 when the table holds the file)."""
        from django.db import connection, transaction

        self.phases = {}
        t = time.perf_counter()
        with transaction.atomic(), connection.cursor() as cursor:
            self._stage(cursor, path)
            t = self._timed("copy", t)
            cursor.execute(self.unchanged_sql, [run_id])
            changed = cursor.fetchone()[0]
            t = self._timed("statement", t)
        self._timed("commit", t)
        return changed

    def check_payloads(self, sample: int = 200) -> str:
        """Whether the payloads PostgreSQL built equal the codec's (``seal``) for a sample of
        the rows in Redis (the codec reads the rows back as the write-through would)."""
        from buyers.models import Buyer
        from sync.cache import connection as redis_connection
        from sync.cache.codec import seal
        from sync.cache.keys import cache_key

        rows = list(
            Buyer.objects.order_by("?").values_list("pk", "version", *self.spec.fields)[:sample]
        )
        client = redis_connection.client()
        differ = 0
        for pk, version, *values in rows:
            key = cache_key(LABEL, pk)
            stored = client.hget(key, "p")
            expected, _key_id = seal(self.spec, key, version, values)
            differ += stored != expected
        return f"floor's payloads equal the codec's on {len(rows) - differ} of {len(rows)} rows"

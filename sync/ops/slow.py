"""The slow-request log: requests slower than ``HTTP_SLOW_REQUEST_MS`` and SQL statements
slower than ``HTTP_SLOW_QUERY_MS``, for the console's slow requests page (docs/console.md).
``sync.ops.timing`` measures; this module logs and keeps.

Kept in the engine's Redis: two capped lists, ``<prefix>:{__slow__}:request`` and
``…:query``, the newest ``HTTP_SLOW_KEEP`` entries each, expiring ``HTTP_SLOW_TTL`` seconds
after the last write. Written through ``connection.run``, behind the circuit breaker and its
short timeouts: a Redis that is down costs a slow request at most one socket timeout, then
nothing while the breaker is open; the entry is dropped and a line logged (fail open,
DESIGN I1). NOTE: not PostgreSQL: a write there has no client-side timeout, and a stalled
database would hang the very requests (``/health/``) that must answer while it is stalled.

No PII (docs/security.md): a request is its id, method, path *without* the query string
(admin searches put e-mail addresses there) and redacted, status and duration; a statement is
its SQL text as Django hands it to the driver, with ``%s`` placeholders and never the
parameters, redacted and cut to ``SQL_LIMIT`` characters.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.conf import settings

from sync.cache import connection
from sync.cache.exceptions import CacheUnavailableError
from sync.redaction import redact

logger = logging.getLogger(__name__)

KINDS = ("request", "query")
SQL_LIMIT = 1000  # characters of a statement kept
SQL_LOG_LIMIT = 200  # … and written to the log line
PATH_LIMIT = 500
QUERIES_PER_REQUEST = 20  # slow statements kept of one request (the slowest)


def key(kind: str) -> str:
    # NOTE: one hash tag: both lists in one slot of a Redis Cluster, written by one pipeline.
    return f"{settings.SYNC_KEY_PREFIX}:{{__slow__}}:{kind}"


def clean_path(path: str) -> str:
    """A request path as recorded: no query string, PII patterns redacted, bounded."""
    return redact(path.split("?", 1)[0][:PATH_LIMIT])


def clean_sql(sql: str) -> str:
    """A statement as recorded: whitespace folded, PII patterns redacted (a literal someone
    wrote into raw SQL), cut to ``SQL_LIMIT`` characters."""
    text = " ".join(sql.split())
    if len(text) > SQL_LIMIT:
        text = text[: SQL_LIMIT - 1] + "…"
    return redact(text)


@dataclass
class SlowQuery:
    ms: float
    sql: str


@dataclass
class SlowRequest:
    """One request's record: ``slow`` whether the request itself was; ``queries`` its slow
    statements, the slowest first."""

    request_id: str
    method: str  # "TASK" for a Celery task (its path is the task's name)
    path: str
    status: int | str  # a task's state ("SUCCESS", "FAILURE")
    ms: float
    slow: bool
    queries: list[SlowQuery] = field(default_factory=list)


def record(entry: SlowRequest) -> None:
    """Log ``entry`` at WARNING (every line carries the request id) and keep it; never
    raises for an unreachable Redis."""
    base = {
        "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "request_id": entry.request_id,
        "method": entry.method,
        "path": entry.path,
        "status": entry.status,
    }
    rows: dict[str, list[str]] = {kind: [] for kind in KINDS}
    if entry.slow:
        logger.warning(
            "slow request: %s %s %s in %.0f ms", entry.method, entry.path, entry.status, entry.ms
        )
        rows["request"].append(json.dumps({**base, "ms": round(entry.ms, 1)}))
    for query in entry.queries:
        logger.warning(
            "slow query: %.0f ms in %s %s: %s",
            query.ms,
            entry.method,
            entry.path,
            query.sql[:SQL_LOG_LIMIT],
        )
        rows["query"].append(json.dumps({**base, "ms": round(query.ms, 1), "sql": query.sql}))
    keep, ttl = settings.HTTP_SLOW_KEEP, settings.HTTP_SLOW_TTL

    def write(client: connection.Client) -> None:
        pipe = client.pipeline(transaction=False)
        for kind, items in rows.items():
            if items:
                pipe.lpush(key(kind), *reversed(items))  # the slowest query ends up on top
                pipe.ltrim(key(kind), 0, keep - 1)
                pipe.expire(key(kind), ttl)
        pipe.execute()

    try:
        connection.run(write)
    except CacheUnavailableError as e:
        # NOTE: one line per slow request at most, next to its own "slow request" line.
        logger.warning("slow-request log not written (%s); the request was served", e)


def recent(kind: str) -> list[dict[str, Any]]:
    """The kept entries of ``kind`` ("request" or "query"), newest first; raises
    ``CacheUnavailableError`` when Redis cannot be read."""
    raw = connection.run(lambda client: client.lrange(key(kind), 0, settings.HTTP_SLOW_KEEP - 1))
    entries = [json.loads(item) for item in raw]
    for entry in entries:
        entry["at"] = datetime.fromisoformat(entry["at"])
    return entries

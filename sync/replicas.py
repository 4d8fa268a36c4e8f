"""PostgreSQL read replicas (docs/scaling.md, "PostgreSQL read replicas").

Every read goes to the primary unless its caller marked it stale-tolerant: ``stale_reads()``
opens a block whose ORM reads the router (``ReplicaRouter``, installed when
``DATABASE_REPLICA_URL`` names replicas) sends to one replica, chosen per block in turn; raw
SQL inside asks ``read_alias()``. Outside such a block, inside a write transaction on the
primary (``atomic``), and for every write, the primary. A replica that does not answer is
skipped for ``DATABASE_REPLICA_RETRY`` seconds (one warning when it goes, one line when it
comes back, ``sync_db_replica_fallbacks`` counts the reads it sent to the primary);
``/health/``'s "Database replica" check and the ``sync_db_replica_*`` gauges say its lag.

NOTE: what may put a value into Redis or decide what Redis is trusted for (fills, replay, the
fence, repair, warming, ingestion) never runs in such a block, and the cache's read-through
pins its own reads to the primary whatever block it is called from (``sync.cache.repository``):
a fill from a lagging replica would store an old version in an emptied key, for good.
``stale_reads(caught_up=True)`` is for scans that must see every commit made before they
began (verification): it waits briefly for a replica to replay the primary's current WAL
position, and reads the primary when none does.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
import time
import warnings
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import environ
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from prometheus_client import Counter

logger = logging.getLogger(__name__)

SETTING = "DATABASE_REPLICA_URL"
POSTGRESQL = "django.db.backends.postgresql"
CONNECT_TIMEOUT = 2  # seconds, unless the URL says connect_timeout=
CATCH_UP_POLL = 0.01  # seconds between two looks at a replica's replay position
# PostgreSQL's WAL page headers (SizeOfXLogLongPHD, SizeOfXLogShortPHD on 64-bit builds).
LONG_PAGE_HEADER = 40
SHORT_PAGE_HEADER = 24

READS = Counter(
    "sync_db_replica_reads",
    "Stale-tolerant read blocks by the database that served them (default: the primary)",
    ["database"],
)
FALLBACKS = Counter(
    "sync_db_replica_fallbacks",
    "Stale-tolerant read blocks a replica did not serve, by reason (unreachable, behind)",
    ["replica", "reason"],
)

_scope: ContextVar[str | None] = ContextVar("sync_replica_scope", default=None)
_turn = itertools.count()
_lock = threading.Lock()
_down_until: dict[str, float] = {}  # replica alias -> monotonic time of its next try


# --------------------------------------------------------------------------- settings


def alias(index: int) -> str:
    """``replica``, ``replica_2``, ``replica_3`` …"""
    return "replica" if index == 1 else f"replica_{index}"


def replica_databases(value: str, default: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``DATABASES`` entries for the comma-separated replica URLs of ``value`` (none when it
    is empty): the primary's connection options (``default``), and ``TEST["MIRROR"]`` so the
    test runner creates no database on them. Raises ImproperlyConfigured naming the setting
    and the URL's position (never its password) when one is not a PostgreSQL URL."""
    found: dict[str, dict[str, Any]] = {}
    urls = [url.strip() for url in value.split(",")] if value.strip() else []
    for index, url in enumerate(urls, start=1):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # an unknown scheme: refused just below
                config = environ.Env.db_url_config(url)
        except (ValueError, KeyError) as e:
            msg = f"{SETTING}: URL {index} of {len(urls)} is malformed ({e})"
            raise ImproperlyConfigured(msg) from e
        if config.get("ENGINE") != POSTGRESQL or not config.get("NAME"):
            msg = (
                f"{SETTING}: URL {index} of {len(urls)} is not a PostgreSQL URL with a database "
                "name: use postgres://user:password@host:5432/dbname (several: comma-separated)"
            )
            raise ImproperlyConfigured(msg)
        options = config.setdefault("OPTIONS", {})
        # As for the primary: a socket directory given as ?host= is the HOST too.
        if options.get("host") and not config["HOST"]:
            config["HOST"] = options["host"]
        # NOTE: a replica that is gone without a word (a dead host) would hold the request
        # for the kernel's TCP timeout, once per DATABASE_REPLICA_RETRY.
        options.setdefault("connect_timeout", CONNECT_TIMEOUT)
        for name in ("CONN_MAX_AGE", "CONN_HEALTH_CHECKS", "DISABLE_SERVER_SIDE_CURSORS"):
            if name in default:
                config[name] = default[name]
        config["TEST"] = {"MIRROR": DEFAULT_DB_ALIAS}
        found[alias(index)] = config
    return found


def replicas() -> list[str]:
    return settings.DATABASE_REPLICAS


# --------------------------------------------------------------------------- routing


class ReplicaRouter:
    """Reads of a ``stale_reads()`` block go to its replica, unless the primary is inside a
    write transaction (its reads must see its own writes, and a fill there must see them too);
    everything else goes to the primary."""

    def db_for_read(self, model: type, **hints: Any) -> str:
        return read_alias()

    def db_for_write(self, model: type, **hints: Any) -> str:
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool:
        return True  # the same rows, whichever server they were read from

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool:
        return db == DEFAULT_DB_ALIAS  # replicas replay the primary's schema


def read_alias() -> str:
    """Where a read issued here goes: the block's replica, or the primary."""
    scoped = _scope.get()
    if scoped is None or connections[DEFAULT_DB_ALIAS].in_atomic_block:
        return DEFAULT_DB_ALIAS
    return scoped


@contextlib.contextmanager
def stale_reads(*, caught_up: bool = False, wait: float = 1.0) -> Iterator[str]:
    """A block of reads that may be as old as a replica's lag; yields the database it uses.

    ``caught_up``: only a replica that has replayed everything the primary had committed when
    the block began (waiting up to ``wait`` seconds for one); otherwise the primary."""
    if not replicas():
        yield DEFAULT_DB_ALIAS  # none configured: nothing changes
        return
    chosen = _choose(caught_up=caught_up, wait=wait)
    READS.labels(chosen).inc()
    token = _scope.set(chosen)
    try:
        yield chosen
    except DatabaseError as e:
        if chosen != DEFAULT_DB_ALIAS and not _answers(chosen):
            _mark_down(chosen, e)  # went away mid-block: this caller sees the error, no other
        raise
    finally:
        _scope.reset(token)


def _choose(*, caught_up: bool, wait: float) -> str:
    if connections[DEFAULT_DB_ALIAS].in_atomic_block:
        return DEFAULT_DB_ALIAS  # the router would send every read of the block there
    now = time.monotonic()
    candidates = [a for a in replicas() if _down_until.get(a, 0.0) <= now]
    if not candidates:
        FALLBACKS.labels("*", "unreachable").inc()
        return DEFAULT_DB_ALIAS
    target = primary_wal_position() if caught_up else None
    start = next(_turn)
    for i in range(len(candidates)):
        name = candidates[(start + i) % len(candidates)]
        if not _connect(name):
            FALLBACKS.labels(name, "unreachable").inc()
        elif target is not None and not _replayed(name, target, wait):
            FALLBACKS.labels(name, "behind").inc()
        else:
            return name
    return DEFAULT_DB_ALIAS


def _connect(name: str) -> bool:
    """Open (or check) the replica's connection; mark it down when it does not answer."""
    conn = connections[name]
    try:
        conn.close_if_health_check_failed()
        conn.ensure_connection()
    except DatabaseError as e:
        _mark_down(name, e)
        return False
    _mark_up(name)
    return True


def _answers(name: str) -> bool:
    conn = connections[name]
    return conn.connection is not None and conn.is_usable()


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _mark_down(name: str, error: Exception) -> None:
    with _lock:
        was_up = name not in _down_until
        _down_until[name] = time.monotonic() + settings.DATABASE_REPLICA_RETRY
    with contextlib.suppress(DatabaseError):
        connections[name].close()
    if was_up:
        logger.warning(
            "database replica %s does not answer (%s): its reads go to the primary, next try "
            "in %g s",
            name,
            _first_line(error),
            settings.DATABASE_REPLICA_RETRY,
        )


def _mark_up(name: str) -> None:
    with _lock:
        was_down = _down_until.pop(name, None) is not None
    if was_down:
        logger.info("database replica %s answers again", name)


def primary_wal_position() -> int:
    """Where the primary has inserted WAL up to, in bytes, as a replica's replay position
    would read once it has replayed all of it."""
    # NOTE: where WAL is inserted, not where it is written: a commit made with
    # synchronous_commit=off is visible on the primary before its WAL is written out. And
    # the insert position right after a page or segment switch points past the new page's
    # header, where no replay ever ends (an idle primary after pg_basebackup's WAL switch
    # stays there): such a position counts as the boundary.
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute(
            "SELECT (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::bigint,"
            " current_setting('wal_block_size')::int,"
            " (SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size')"
        )
        return replay_end(*cursor.fetchone())


def replay_end(position: int, page: int, segment: int) -> int:
    """An insert ``position`` as a replay position: a page's or segment's header is skipped."""
    if position % segment == LONG_PAGE_HEADER:
        return position - LONG_PAGE_HEADER
    if position % page == SHORT_PAGE_HEADER:
        return position - SHORT_PAGE_HEADER
    return position


def _replayed(name: str, target: int, wait: float) -> bool:
    """Has the replica replayed up to ``target`` (waiting up to ``wait`` seconds for it)?"""
    deadline = time.monotonic() + wait
    with connections[name].cursor() as cursor:
        while True:
            cursor.execute(
                "SELECT coalesce(pg_last_wal_replay_lsn() - '0/0'::pg_lsn >= %s, true)", [target]
            )
            if cursor.fetchone()[0]:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(CATCH_UP_POLL)


def forget_state() -> None:
    """Forget which replicas were down (tests; a process that was told they are back)."""
    with _lock:
        _down_until.clear()


# --------------------------------------------------------------------------- status


@dataclass(frozen=True)
class ReplicaStatus:
    """What a replica says about itself: for ``/health/`` and the gauges."""

    name: str
    answers: bool
    error: str = ""
    standby: bool = False  # in recovery: a replica indeed (not a primary named by mistake)
    lag_seconds: float | None = None  # 0 when it has replayed all it received
    paused: bool = False

    def problem(self, lag_warning: float) -> str:
        """What an operator should hear about, or ""."""
        if not self.answers:
            return f"does not answer ({self.error}): its reads go to the primary"
        if not self.standby:
            return "is not a standby (pg_is_in_recovery() is false): is the URL the primary's?"
        if self.paused:
            return f"replay paused, {self.lag_seconds or 0:.1f} s behind"
        if self.lag_seconds is not None and self.lag_seconds > lag_warning:
            return f"{self.lag_seconds:.1f} s behind (warning above {lag_warning:g} s)"
        return ""


_STATUS = """
    SELECT pg_is_in_recovery(),
           CASE WHEN NOT pg_is_in_recovery() THEN NULL
                WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn()
                THEN 0.0
                ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8 END,
           CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() ELSE false END
"""


def replica_status(name: str) -> ReplicaStatus:
    """Ask the replica (its own question, not a routed read); closes this thread's connection
    to it afterwards (the health checks run on a pool of threads)."""
    try:
        with connections[name].cursor() as cursor:
            cursor.execute(_STATUS)
            standby, lag, paused = cursor.fetchone()
    except DatabaseError as e:
        return ReplicaStatus(name, answers=False, error=_first_line(e))
    finally:
        connections[name].close()
    return ReplicaStatus(name, answers=True, standby=standby, lag_seconds=lag, paused=paused)

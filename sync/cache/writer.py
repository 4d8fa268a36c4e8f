"""Write-through on commit (DESIGN I3, I4).

Signal receivers and the bulk helpers only *mark* (model, pk) as changed in a per-transaction
buffer; one ``transaction.on_commit`` callback per transaction then re-reads the pending
intents with their rows, writes Redis in one pipelined round trip and deletes the intents it
completed. Nothing touches Redis before commit, so a rollback never reaches it. Any failure
leaves the intents for replay (attempts, backoff, redacted error, fence epoch); no failure
ever reaches the code that committed (I1).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from functools import partial

from django.db import DatabaseError, connections, transaction

from sync.cache import events, outbox, store
from sync.cache.declaration import spec_for
from sync.cache.exceptions import CacheUnavailableError
from sync.cache.fence import fence

logger = logging.getLogger(__name__)


class _TransactionBuffer:
    __slots__ = ("callback", "keys", "using")

    def __init__(self, using: str) -> None:
        self.using = using
        self.keys: dict[str, set[str]] = defaultdict(set)
        self.callback = self.flush

    def flush(self) -> None:
        flush_keys(self.keys, using=self.using)


def _buffer(using: str) -> _TransactionBuffer:
    conn = connections[using]
    found: _TransactionBuffer | None = getattr(conn, "_sync_buffer", None)
    # NOTE: the buffer lives as long as its on_commit callback: a rolled-back transaction
    # drops the callback, so a buffer whose callback is no longer queued is stale.
    if (
        found is None
        or not conn.in_atomic_block
        # django-stubs has run_on_commit's entries as Django 4's pairs; Django 5's are triples.
        or not any(callback is found.callback for _sids, callback, _robust in conn.run_on_commit)  # type: ignore[misc]
    ):
        found = _TransactionBuffer(using)
        conn._sync_buffer = found  # type: ignore[attr-defined]  # the buffer rides on the connection
        transaction.on_commit(found.callback, using=using, robust=True)
    return found


def mark_changed(label: str, pks: Iterable[object], using: str = "default") -> None:
    """Schedule write-through of these rows when the current transaction commits."""
    keys = [str(pk) for pk in pks]
    if not keys:
        return
    conn = connections[using]
    if not conn.in_atomic_block:
        flush_keys({label: set(keys)}, using=using)  # autocommit: already committed
        return
    _buffer(using).keys[label].update(keys)


def write_on_commit(
    states: list[outbox.RowState],
    using: str = "default",
    *,
    via: BackgroundWriter | None = None,
    marks: store.Marks | None = None,
) -> None:
    """Write these row states through when the current transaction commits.

    For a bulk statement that already has what Redis needs: it wrote the rows and enqueued
    their intents itself, and answered each row's version and cached values (``RETURNING``),
    so the write-through reads nothing again. CAS orders it with any later write (I2), as the
    re-read would. The completed intents are settled later, in bulk (``take_settled``).
    ``via``: handed to that writer's thread at commit instead of written before the commit
    returns. ``marks``: ``store.capture()`` taken before the statement (``store.Marks``).
    """
    if not states:
        return
    write = via.submit if via is not None else partial(_write_known, using=using)
    if not connections[using].in_atomic_block:
        _stamped(write, states, marks)  # autocommit: already committed
        return
    transaction.on_commit(partial(_stamped, write, states, marks), using=using, robust=True)


def _stamped(
    write: Callable[..., None], states: list[outbox.RowState], marks: store.Marks | None
) -> None:
    """Hand the states to ``write`` with the commit's moment: now, as the hook runs (a
    background writer may write them a little later; the events say when they committed)."""
    write(states, marks=marks, committed_at=events.now_ms())


def _write_known(
    states: list[outbox.RowState],
    using: str,
    settle_to: list[outbox.RowState] | None = None,
    marks: store.Marks | None = None,
    committed_at: int | None = None,
) -> None:
    try:
        write_states(
            states,
            using=using,
            defer_settle=True,
            defer_any=True,
            defer_to=settle_to,
            marks=marks,
            committed_at=committed_at,
        )
    except Exception:
        logger.exception("write-through failed unexpectedly; replay will retry the intents")


class BackgroundWriter:
    """Write-through on a thread of its own, for a bulk loader (spreadsheet ingestion).

    Each committed batch's states are handed over at commit (``submit``) and written in
    order by one thread, while the loader's next transaction runs: Redis and PostgreSQL work
    overlap instead of taking turns. Nothing is written before its commit (I4); failures go
    to the outbox exactly as on the loader's own thread (I1, I3), on this thread's own
    database connection. The completed writes are handed back (``take_completed``) for the
    loader to delete their intents in its next transaction. At most ``MAX_BEHIND`` batches
    wait: a slow Redis slows the loader down instead of piling states up in memory.
    """

    MAX_BEHIND = 4

    def __init__(self, using: str = "default") -> None:
        self.using = using
        self._queue: queue.Queue[
            tuple[list[outbox.RowState], store.Marks | None, int | None] | None
        ] = queue.Queue(maxsize=self.MAX_BEHIND)
        self._completed: list[outbox.RowState] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def submit(
        self,
        states: list[outbox.RowState],
        marks: store.Marks | None = None,
        committed_at: int | None = None,
    ) -> None:
        """``marks``: captured where the states were read (before the batch statement), not
        here: a loss between that read and this hand-over must be seen too. ``committed_at``:
        the commit's moment (epoch ms) for the change events, else the write's."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="sync-write-through", daemon=True
            )
            self._thread.start()
        self._queue.put((states, marks, committed_at))

    def _run(self) -> None:
        try:
            while (item := self._queue.get()) is not None:
                states, marks, committed_at = item
                done: list[outbox.RowState] = []
                _write_known(
                    states, self.using, settle_to=done, marks=marks, committed_at=committed_at
                )
                with self._lock:
                    self._completed.extend(done)
                self._queue.task_done()
        finally:
            connections[self.using].close()  # this thread's own, used by the failure path

    def take_completed(self) -> list[outbox.RowState]:
        with self._lock:
            done, self._completed = self._completed, []
        return done

    def close(self) -> list[outbox.RowState]:
        """Wait, stop the thread, and return the completed writes not taken yet."""
        if self._thread is not None:
            self._queue.join()
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        return self.take_completed()


def take_settled(using: str = "default") -> list[outbox.RowState]:
    """The completed writes whose intents this connection has not deleted yet, taken: for a
    caller that deletes them inside its own next transaction (``outbox.settle_cte``) rather
    than in a commit of their own. ``restore_settled`` if that transaction rolls back."""
    return _take_settle(using)


def restore_settled(states: list[outbox.RowState], using: str = "default") -> None:
    if states:
        _defer(states, using)


def flush_keys(keys: dict[str, set[str]], using: str = "default") -> None:
    """Bring Redis up to date for these keys' pending intents; never raises (I1)."""
    try:
        _flush_keys(keys, using)
    except Exception:
        logger.exception("write-through failed unexpectedly; replay will retry the intents")


# The completed intent of a single-row write-through (the common save) is not deleted at once:
# deleting is a write, and its commit waits for the WAL flush. They are collected per
# connection and deleted together inside a later write-through's read (one data-modifying
# CTE) once SETTLE_BATCH have gathered or the oldest is SETTLE_AGE seconds old. Bigger
# write-throughs, and intents that had failed before (they hold the fence closed), are
# deleted at once.
DEFER_SETTLE_MAX = 1
SETTLE_BATCH = 32
SETTLE_AGE = 1.0


def _take_settle(using: str, *, due_only: bool = False) -> list[outbox.RowState]:
    held = connections[using].__dict__
    pending = held.get("_sync_settle")
    if not pending:
        return []
    if (
        due_only
        and len(pending) < SETTLE_BATCH
        and (time.monotonic() - held["_sync_settle_since"] < SETTLE_AGE)
    ):
        return []
    del held["_sync_settle"]
    settled: list[outbox.RowState] = pending
    return settled


def settle(using: str = "default") -> int:
    """Delete the intents this connection's last write-through completed (tests, shutdown).

    Left alone, they go with the next write-through of this connection, or replay deletes
    them after its grace period (its write is then a no-op: Redis has the version already).
    """
    states = _take_settle(using)
    return outbox.complete(states, using=using) if states else 0


def _settle_at_exit() -> None:
    with contextlib.suppress(Exception):  # best effort: replay deletes whatever is left
        settle()


atexit.register(_settle_at_exit)


def _defer(states: list[outbox.RowState], using: str) -> None:
    if not states:
        return
    held = connections[using].__dict__
    if not held.get("_sync_settle"):
        held["_sync_settle"], held["_sync_settle_since"] = [], time.monotonic()
    held["_sync_settle"].extend(states)


def _flush_keys(keys: dict[str, set[str]], using: str) -> None:
    committed_at = events.now_ms()  # the on_commit hook runs right after COMMIT
    settle_now = _take_settle(using, due_only=True)
    marks = store.capture()  # before the read: see store.Marks
    try:
        states = []
        for label, pks in keys.items():
            states += outbox.intent_states(
                spec_for(label), sorted(pks), using=using, settle=settle_now
            )
            settle_now = []
    except DatabaseError as e:
        logger.warning("write-through skipped, replay will do it: %s", type(e).__name__)
        return
    if not states:
        return
    write_states(states, using=using, defer_settle=True, marks=marks, committed_at=committed_at)


def note_lost(states: list[outbox.RowState], using: str = "default") -> None:
    """Redis may have lost data between the read of these states and their write
    (``store.Marks``): a late, older write may sit in an emptied key. Intents for them again,
    and the fence closed for their models, as after a failed write; replay writes the newest
    versions. Raises ``DatabaseError``."""
    epochs = outbox.requeue_lost(states, using=using)
    fence.note_failure(epochs)
    logger.warning(
        "the cache Redis lost its data during a write of %d key(s); left for replay", len(states)
    )


def overwrite(states: list[outbox.RowState], *, marks: store.Marks, source: str) -> int:
    """Write these states to Redis over what it holds at their version or an older one (a
    damaged or hand-edited entry at the same version is rewritten); a newer version, a write
    that landed since the states were read, is kept (I2). Their intents, if any, are left as
    they are. ``marks``: captured before the states were read; when Redis lost its data
    since, the rows get intents again with the fence closed (``note_lost``). Answers how many
    entries Redis took (blind-index entries count too). Raises ``CacheUnavailableError``
    when Redis is down, ``DatabaseError`` when a loss cannot be recorded."""
    applied = store.write_many(
        [w for state in states for w in state.to_writes(spec_for(state.label))],
        replace_equal=True,
        marks=marks,
        source=source,
    )
    if marks.lost:
        note_lost(states)
    return sum(applied)


def write_states(
    states: list[outbox.RowState],
    using: str = "default",
    *,
    defer_settle: bool = False,
    defer_any: bool = False,
    defer_to: list[outbox.RowState] | None = None,
    marks: store.Marks | None = None,
    source: str = store.WRITE_THROUGH,
    committed_at: int | None = None,
) -> bool:
    """Write these states to Redis and settle their intents. True when Redis took them.

    ``defer_settle``: a single-row write's intent is deleted later, with others
    (``defer_any``: however many rows; ``defer_to``: collected in that list instead of this
    connection's); intents that had failed before are deleted at once. ``marks``: captured
    before the states were read; when Redis lost its data since, the intents are left for
    replay with the fence closed (``note_lost``), and nothing is settled. ``source``: who
    writes, recorded on each key that takes the write (``store.write_many``).
    ``committed_at``: the change events' commit time (epoch ms) for states without their own
    (``RowState.committed_at``); None: now.
    """
    if not states:
        return True
    try:
        writes = [w for state in states for w in state.to_writes(spec_for(state.label))]
        # wait: with SYNC_REDIS_WAIT_REPLICAS, done means on the replicas too (docs/scaling.md);
        # the change events ride on the same intents (sync/cache/events), in the same round
        # trip, after the writes and only while Redis kept its data (store.write_many's then)
        store.write_many(
            writes,
            wait=True,
            marks=marks,
            source=source,
            then=events.calls(states, committed_at),
        )
        if marks is not None and marks.lost:
            note_lost(states, using=using)
            return True
    except (CacheUnavailableError, DatabaseError) as e:
        try:
            epochs, _dead = outbox.fail(states, str(e), using=using)
        except DatabaseError:
            logger.exception("could not record a failed cache write; replay will retry it")
            return False
        fence.note_failure(epochs)
        logger.warning("cache write failed for %d key(s), left for replay: %s", len(states), e)
        return False
    if defer_settle and (defer_any or len(states) <= DEFER_SETTLE_MAX):
        later = [s for s in states if not s.retried]
        if defer_to is not None:
            defer_to.extend(later)
        else:
            _defer(later, using)
        states = [s for s in states if s.retried]
        if not states:
            return True
    try:
        outbox.complete(states, using=using)
    except DatabaseError:
        # Redis is right; the intents stay and replay's next CAS write is a no-op.
        logger.warning("cache written but intents not cleared; replay will clear them")
    return True

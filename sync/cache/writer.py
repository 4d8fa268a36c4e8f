"""Write-through on commit (DESIGN I3, I4).

Signal receivers and the bulk helpers only *mark* (model, pk) as changed in a per-transaction
buffer; one ``transaction.on_commit`` callback per transaction then re-reads the pending
intents with their rows, writes Redis in one pipelined round trip and deletes the intents it
completed. Nothing touches Redis before commit, so a rollback never reaches it. Any failure
leaves the intents for replay (attempts, backoff, redacted error, fence epoch); no failure
ever reaches the code that committed (I1).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable

from django.db import DatabaseError, connections, transaction

from sync.cache import outbox, store
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
    if found is None or not conn.in_atomic_block or not any(
        callback is found.callback for _sids, callback, _robust in conn.run_on_commit
    ):
        found = _TransactionBuffer(using)
        conn._sync_buffer = found
        transaction.on_commit(found.callback, using=using, robust=True)
    return found


def mark_changed(label: str, pks: Iterable[object], using: str = "default") -> None:
    """Schedule write-through of these rows when the current transaction commits."""
    pks = [str(pk) for pk in pks]
    if not pks:
        return
    conn = connections[using]
    if not conn.in_atomic_block:
        flush_keys({label: set(pks)}, using=using)  # autocommit: already committed
        return
    _buffer(using).keys[label].update(pks)


def flush_keys(keys: dict[str, set[str]], using: str = "default") -> None:
    """Bring Redis up to date for these keys' pending intents; never raises (I1)."""
    try:
        _flush_keys(keys, using)
    except Exception:
        logger.exception("write-through failed unexpectedly; replay will retry the intents")


def _flush_keys(keys: dict[str, set[str]], using: str) -> None:
    try:
        states = [
            state
            for label, pks in keys.items()
            for state in outbox.intent_states(spec_for(label), sorted(pks), using=using)
        ]
    except DatabaseError as e:
        logger.warning("write-through skipped, replay will do it: %s", type(e).__name__)
        return
    if not states:
        return
    write_states(states, using=using)


def write_states(states: list[outbox.RowState], using: str = "default") -> bool:
    """Write these states to Redis and settle their intents. True when Redis took them."""
    if not states:
        return True
    try:
        writes = [w for state in states for w in state.to_writes(spec_for(state.label))]
        store.write_many(writes)
    except CacheUnavailableError as e:
        try:
            epochs, _dead = outbox.fail(states, str(e), using=using)
        except DatabaseError:
            logger.exception("could not record a failed cache write; replay will retry it")
            return False
        fence.note_failure(epochs)
        logger.warning("cache write failed for %d key(s), left for replay: %s", len(states), e)
        return False
    try:
        outbox.complete(states, using=using)
    except DatabaseError:
        # Redis is right; the intents stay and replay's next CAS write is a no-op.
        logger.warning("cache written but intents not cleared; replay will clear them")
    return True

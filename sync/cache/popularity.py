"""Which rows are read most: counted cheaply in the cache Redis, kept in PostgreSQL, warmed
first after a cold start.

**Counting.** A domain app's public read calls ``record(model, pk)`` (or ``record_many``)
after it found the row. Only ``SYNC_POPULAR_SAMPLE_RATE`` of the calls count (0.05: one in
twenty), each with one pipelined round trip: a ``ZINCRBY`` on the model's sorted set
(``<prefix>:__popular__:<label>``). The window holds at most twice ``SYNC_POPULAR_KEEP``
members; the call that finds it past that trims it to the ``SYNC_POPULAR_KEEP`` most read
(``ZREMRANGEBYRANK``), so a newly popular row has room to climb before the next trim.
Counting never fails a read: Redis down, paused or refusing is logged at DEBUG and skipped.
It is not on ``sync.cache.repository``'s path: only reads that mean "a customer looked at
this" count (the catalog's part detail), not every cache access.

**Surviving the flush.** The window lives in the cache Redis, which a restart or a FLUSHALL
empties: exactly when the warm needs it. So beat's ``sync-popular-snapshot`` (every
``SYNC_POPULAR_SNAPSHOT_INTERVAL``) runs ``snapshot``: each model's window is read and
emptied in one step, and folded into ``sync_popular_keys`` (``sync.models.PopularKey``):
the scores there are first decayed (halved every ``SYNC_POPULAR_HALF_LIFE`` seconds since
they were last folded), the window's counts added, and only the ``SYNC_POPULAR_KEEP`` best
per model kept. Scores are in sampled reads (divide by the rate for reads).

**Warming first.** ``popular_pks(spec)`` is what the automatic warm (``autowarm.run_warm``)
writes before its keyset pass over every row.
"""

from __future__ import annotations

import functools
import logging
import random
from collections.abc import Iterable
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import connection as db
from django.db import transaction

from sync.cache import connection
from sync.cache.declaration import SyncSpec, spec_for, synced_models
from sync.cache.exceptions import CacheUnavailableError
from sync.cache.keys import popular_key
from sync.models import PopularKey

if TYPE_CHECKING:
    from django.db import models

logger = logging.getLogger(__name__)

# A read to count: the model (or its label, ``app_label.model``) and the row's primary key.
Read = tuple["type[models.Model] | str", object]


def record(model_or_label: type[models.Model] | str, pk: object) -> None:
    """Count one read of this row, sampled (see above); never raises a Redis error."""
    record_many([(model_or_label, pk)])


def record_many(reads: Iterable[Read]) -> None:
    """Count reads that belong together (a page that showed a part and its stock): one
    sampling decision and one round trip for all of them."""
    rate = settings.SYNC_POPULAR_SAMPLE_RATE
    # Sampling, not security: a predictable generator is fine here.
    if rate <= 0 or random.random() >= rate:  # noqa: S311
        return
    calls = [(popular_key(spec_for(model).label), str(pk)) for model, pk in reads]
    try:
        cards = connection.run(lambda client: _count(client, calls))
        full = [key for (key, _pk), card in zip(calls, cards, strict=True) if card > _window()]
        if full:
            connection.run(lambda client: _trim(client, full))
    except CacheUnavailableError as e:
        logger.debug("a read was not counted for popularity: %s", e)


def _window() -> int:
    return 2 * int(settings.SYNC_POPULAR_KEEP)


def _count(client: connection.Client, calls: list[tuple[str, str]]) -> list[int]:
    """ZINCRBY each, and each window's size after it: one round trip."""
    pipe = client.pipeline(transaction=False)
    for key, member in calls:
        pipe.zincrby(key, 1, member)
        pipe.zcard(key)
    replies: list[int] = pipe.execute()[1::2]
    return replies


def _trim(client: connection.Client, keys: list[str]) -> None:
    """Keep the SYNC_POPULAR_KEEP most read of each window (ties: by member, lowest first)."""
    pipe = client.pipeline(transaction=False)
    for key in dict.fromkeys(keys):
        pipe.zremrangebyrank(key, 0, -settings.SYNC_POPULAR_KEEP - 1)
    pipe.execute()


def _drain(client: connection.Client, *, key: str) -> list[tuple[bytes, float]]:
    """The window's counts, most read first, and the window emptied: one step.

    NOTE: on a cluster the two are not one transaction; a read counted between them is lost
    (one sampled read, once a minute at most)."""
    pipe = client.pipeline(transaction=not connection.is_cluster(client))
    pipe.zrevrange(key, 0, settings.SYNC_POPULAR_KEEP - 1, withscores=True)
    pipe.delete(key)
    counts, _deleted = pipe.execute()
    return [(member, float(score)) for member, score in counts]


def snapshot() -> dict[str, int]:
    """Fold every model's window of counts into ``sync_popular_keys`` (see above); per model
    that had counts, how many popular keys it now has. A model whose window cannot be read
    (the cache Redis does not answer) keeps its snapshot as it was."""
    kept: dict[str, int] = {}
    for spec in synced_models():
        key = popular_key(spec.label)
        try:
            counts = connection.run(functools.partial(_drain, key=key))
        except CacheUnavailableError as e:
            logger.info("popular keys of %s not snapshotted: %s", spec.label, e)
            continue
        if counts:
            kept[spec.label] = _merge(spec.label, [(m.decode(), s) for m, s in counts])
    return kept


def _merge(label: str, counts: list[tuple[str, float]]) -> int:
    """Decay the model's scores to now, add the window's counts, keep the best; one
    transaction, one snapshot at a time (a second waits for the first's lock)."""
    table = db.ops.quote_name(PopularKey._meta.db_table)
    with transaction.atomic(), db.cursor() as cursor:
        # Readers (the warm) go on reading; a concurrent snapshot waits.
        cursor.execute(f"LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE")
        cursor.execute(
            f"UPDATE {table} SET score = score * power(0.5, "  # noqa: S608 - quoted name
            "greatest(extract(epoch FROM now() - updated_at), 0) / %s), updated_at = now() "
            "WHERE label = %s",
            [settings.SYNC_POPULAR_HALF_LIFE, label],
        )
        cursor.execute(
            f"INSERT INTO {table} AS p (label, object_pk, score, updated_at) "
            "SELECT %s, unnest(%s::text[]), unnest(%s::float8[]), now() "
            "ON CONFLICT (label, object_pk) DO UPDATE SET score = p.score + EXCLUDED.score, "
            "updated_at = now()",
            [label, [pk for pk, _ in counts], [score for _, score in counts]],
        )
        cursor.execute(
            f"DELETE FROM {table} WHERE label = %s AND id NOT IN ("  # noqa: S608
            f"SELECT id FROM {table} WHERE label = %s ORDER BY score DESC, object_pk LIMIT %s)",
            [label, label, settings.SYNC_POPULAR_KEEP],
        )
        cursor.execute(f"SELECT count(*) FROM {table} WHERE label = %s", [label])  # noqa: S608
        (count,) = cursor.fetchone()
    return int(count)


def popular_pks(spec: SyncSpec) -> list[str]:
    """The model's popular primary keys (their text), most read first, from the snapshot."""
    return list(
        PopularKey.objects.filter(label=spec.label)
        .order_by("-score", "object_pk")
        .values_list("object_pk", flat=True)[: settings.SYNC_POPULAR_KEEP]
    )

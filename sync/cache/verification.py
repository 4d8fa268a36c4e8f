"""Verification: does Redis hold what PostgreSQL holds? (docs/sync-engine.md)

For every row the versions in PostgreSQL and Redis are compared (pipelined, in batches):
*missing* (no key), *stale* (older version, or a tombstone over a live row), and then a SCAN
of the model's keys finds *extra* keys (live values for rows PostgreSQL no longer has).
Consistency is the fraction of rows present at their current version, also as "nines".
``repair`` rewrites what is missing or stale and tombstones what is extra.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from sync.cache import outbox, store, writer
from sync.cache.declaration import SyncSpec
from sync.cache.keys import cache_key, model_pattern, pk_from_key
from sync.cache.outbox import RowState
from sync.cache.warming import captured, count_rows, iter_rows

SAMPLE = 20  # keys listed per category in a report


@dataclass
class VerifyReport:
    label: str
    rows: int = 0
    consistent: int = 0
    missing: int = 0
    stale: int = 0
    extra: int = 0
    repaired: int = 0
    examples: dict[str, list[str]] = field(
        default_factory=lambda: {"missing": [], "stale": [], "extra": []}
    )

    @property
    def fraction(self) -> float:
        return self.consistent / self.rows if self.rows else 1.0

    @property
    def nines(self) -> float:
        """-log10 of the inconsistent fraction (inf when everything matches)."""
        bad = 1.0 - self.fraction
        return math.inf if bad <= 0 else -math.log10(bad)

    @property
    def ok(self) -> bool:
        return self.missing == self.stale == self.extra == 0

    def _note(self, kind: str, key: str) -> None:
        if len(self.examples[kind]) < SAMPLE:
            self.examples[kind].append(key)

    def __str__(self) -> str:
        nines = "inf" if math.isinf(self.nines) else f"{self.nines:.2f}"
        return (
            f"{self.label}: {self.rows} rows, {self.consistent} consistent "
            f"({self.fraction:.6%}, {nines} nines), missing {self.missing}, "
            f"stale {self.stale}, extra {self.extra}, repaired {self.repaired}"
        )


def verify(
    spec: SyncSpec,
    *,
    repair: bool = False,
    batch_size: int | None = None,
    progress: Callable[[VerifyReport, int], None] | None = None,
) -> VerifyReport:
    batch_size = batch_size or settings.SYNC_WARM_BATCH
    report = VerifyReport(spec.label)
    total = count_rows(spec)
    for batch, marks in captured(iter_rows(spec, batch_size)):
        to_repair = compare(spec, report, batch)
        if repair and to_repair:
            writer.overwrite(to_repair, marks=marks, source=store.REPAIR)
            report.repaired += len(to_repair)
        if progress:
            progress(report, total)
    _find_extra(spec, report, repair=repair, batch_size=batch_size)
    return report


def compare(
    spec: SyncSpec, report: VerifyReport, rows: list[tuple[str, int, tuple[Any, ...]]]
) -> list[RowState]:
    """Count these rows, read from PostgreSQL as (pk text, version, values), against the
    versions Redis holds (one round trip): *missing*, *stale* or consistent, with examples.
    Answers the states that would repair the missing and stale ones."""
    stored = store.versions([cache_key(spec.label, pk) for pk, _v, _values in rows])
    to_repair = []
    for (pk, version, values), (cached, tombstone) in zip(rows, stored, strict=True):
        report.rows += 1
        key = cache_key(spec.label, pk)
        if cached is None:
            report.missing += 1
            report._note("missing", key)
            to_repair.append(RowState(spec.label, pk, version, values))
        elif cached < version or (cached == version and tombstone == spec.is_live(values)):
            # (A newer version than our snapshot is a write or delete that landed since;
            # a soft-deleted row must be a tombstone, a live one must not.)
            report.stale += 1
            report._note("stale", key)
            to_repair.append(RowState(spec.label, pk, version, values))
        else:
            report.consistent += 1
    return to_repair


def _find_extra(spec: SyncSpec, report: VerifyReport, *, repair: bool, batch_size: int) -> None:
    for names in store.scan_keys(model_pattern(spec.label), count=batch_size):
        if names:
            stored = store.versions(names)
            live = {
                pk_from_key(name, spec.label): name
                for name, (version, tombstone) in zip(names, stored, strict=True)
                if version is not None and not tombstone
            }
            existing = _existing_pks(spec, list(live))
            for pk, name in live.items():
                if pk not in existing:
                    report.extra += 1
                    report._note("extra", name)
                    if repair:
                        store.write_many(
                            [RowState(spec.label, pk, outbox.next_version(), None).to_write(spec)]
                        )
                        report.repaired += 1


def _existing_pks(spec: SyncSpec, pks: list[str]) -> set[str]:
    field = spec.model._meta.pk
    values = []
    for pk in pks:
        try:
            values.append(field.to_python(pk))
        except Exception:  # noqa: BLE001, S112 - a malformed key is simply not a row of ours
            continue
    return {
        str(pk)
        for pk in spec.model._base_manager.filter(pk__in=values).values_list("pk", flat=True)
    }

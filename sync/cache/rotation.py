"""Key rotation: re-encrypt cached Tier 2/3 values under the newest key (DESIGN I5).

Put the new key first in ``SYNC_ENCRYPTION_KEYS`` (keep the old ones), deploy, run
``manage.py sync_rotate_keys``; when it reports nothing left under old keys, drop them.
Each entry is decrypted and re-encrypted at its own version, and replaced only if neither
its version nor its key id changed meanwhile (a concurrent write already used the new key).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sync.cache import connection, outbox, store
from sync.cache.declaration import SyncSpec, Tier, synced_models
from sync.cache.exceptions import UndecodableEntryError
from sync.cache.keys import model_pattern, pk_from_key
from sync.cache.tiers import decrypt, encrypt, keyring


@dataclass
class RotationReport:
    label: str
    scanned: int = 0
    rotated: int = 0
    current: int = 0
    repaired: int = 0

    def __str__(self) -> str:
        return (
            f"{self.label}: {self.scanned} keys, {self.rotated} re-encrypted, "
            f"{self.current} already under the current key, {self.repaired} undecodable "
            "under every configured key and rewritten from PostgreSQL"
        )


def rotate(
    spec: SyncSpec,
    *,
    batch_size: int = 500,
    progress: Callable[[RotationReport], None] | None = None,
) -> RotationReport:
    report = RotationReport(spec.label)
    current = keyring().current_id
    for names in store.scan_keys(model_pattern(spec.label), count=batch_size):
        entries = connection.run(functools.partial(_hmget, names=names), bulk=True)
        jobs, undecodable = [], []
        for name, (version, payload, key_id, tombstone) in zip(names, entries, strict=True):
            report.scanned += 1
            if version is None or tombstone == b"1" or key_id in (None, b""):
                continue
            if key_id.decode() == current:
                report.current += 1
                continue
            try:
                plain = decrypt(payload, key=name, version=int(version), key_id=key_id.decode())
            except UndecodableEntryError:
                undecodable.append(pk_from_key(name, spec.label))
                continue
            sealed, new_id = encrypt(plain, key=name, version=int(version))
            jobs.append((name, version, key_id, sealed, new_id))
        if jobs:
            report.rotated += sum(
                connection.run(functools.partial(_reencrypt, jobs=jobs), bulk=True)
            )
        if undecodable:
            report.repaired += _rewrite_from_database(spec, undecodable)
        if progress:
            progress(report)
    return report


def _hmget(client: connection.Client, names: list[str]) -> list[Any]:
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.hmget(name, "v", "p", "k", "t")
    return pipe.execute()


def _reencrypt(
    client: connection.Client, jobs: list[tuple[str, bytes, bytes, bytes, str]]
) -> list[int]:
    return store.eval_many(
        client,
        "reencrypt",
        [
            (name, [version, old_id, sealed, new_id])
            for name, version, old_id, sealed, new_id in jobs
        ],
    )


def _rewrite_from_database(spec: SyncSpec, pks: list[str]) -> int:
    """Entries no configured key opens are rewritten from the truth (same version allowed)."""
    states = outbox.row_states(spec, pks, {pk: outbox.next_version() for pk in pks})
    store.write_many([w for s in states for w in s.to_writes(spec)], replace_equal=True)
    return len(states)


def rotate_all(*, progress: Callable[[RotationReport], None] | None = None) -> list[RotationReport]:
    return [rotate(spec, progress=progress) for spec in synced_models() if spec.tier != Tier.PUBLIC]

"""Cache keys: ``<prefix>:<app_label>.<model>:<pk>``; one key per row, one key per script."""

from __future__ import annotations

from django.conf import settings


def cache_key(label: str, pk: object) -> str:
    return f"{settings.SYNC_KEY_PREFIX}:{label}:{pk}"


def index_key(label: str, field: str, digest: str) -> str:
    """A blind-index entry; ``#`` keeps it outside the model's row-key pattern."""
    return f"{settings.SYNC_KEY_PREFIX}:{label}#bi:{field}:{digest}"


def model_pattern(label: str) -> str:
    return f"{settings.SYNC_KEY_PREFIX}:{label}:*"


def fence_key() -> str:
    return f"{settings.SYNC_KEY_PREFIX}:__fence__"


def marker_key(tag: str = "") -> str:
    """The data-loss marker (``store.Marks``); ``tag``: a hash tag that puts it on one
    primary of a cluster (one marker per primary)."""
    return f"{settings.SYNC_KEY_PREFIX}:__lost__" + (f":{{{tag}}}" if tag else "")


def pk_from_key(key: str, label: str) -> str:
    return key[len(settings.SYNC_KEY_PREFIX) + len(label) + 2 :]


def warm_key(part: str = "") -> str:
    """The automatic warm's state hash, lock and start claim: one hash tag, one slot."""
    return f"{settings.SYNC_KEY_PREFIX}:{{__warm__}}" + (f":{part}" if part else "")


def popular_key(label: str) -> str:
    """A model's read counts (``sync.cache.popularity``): a sorted set outside the model's
    row-key pattern, so verification and rotation never take it for a row."""
    return f"{settings.SYNC_KEY_PREFIX}:__popular__:{label}"

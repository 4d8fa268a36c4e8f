"""Declaring a model as synced: one ``@synced(...)`` next to the model.

The declaration names the tier, the fields that go into the cached payload, the TTL and the
key prefix; the registry it fills is what the writer, replay, warming, verification and the
repository look models up in.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from sync.cache.exceptions import NotSyncedError

if TYPE_CHECKING:
    from django.db import models

    from sync.models import SyncedModel

_ModelT = TypeVar("_ModelT", bound="type[models.Model]")


class Tier(enum.IntEnum):
    PUBLIC = 1  # plaintext (catalog)
    SENSITIVE = 2  # AES-256-GCM encrypted payload (orders)
    PII = 3  # blind indexes + encrypted remainder (customers)


@dataclass(frozen=True)
class SyncSpec:
    model: type[SyncedModel]
    tier: Tier
    fields: tuple[str, ...]
    ttl: int  # seconds; each write adds up to `ttl_jitter` of it at random
    ttl_jitter: float = 0.1
    pii_fields: tuple[str, ...] = ()
    prefix: str | None = None  # defaults to settings.SYNC_KEY_PREFIX
    # A nullable field whose non-null value means "soft-deleted": such a row is a tombstone in
    # Redis and repository reads do not return it, exactly as if it were gone.
    soft_delete: str | None = None
    attnames: tuple[str, ...] = field(init=False)
    to_python: tuple[Callable[[Any], Any] | None, ...] = field(init=False, repr=False)
    # indexed field name -> position of its blind index digest in the payload values
    blind_indexes: dict[str, int] = field(init=False, hash=False, compare=False)

    def __post_init__(self) -> None:
        from sync.cache.tiers import blind_index_fields

        leaked = sorted(set(self.fields) & set(self.pii_fields))
        if leaked:
            msg = f"{self.label}: PII fields may not be cached: {', '.join(leaked)} (I5)"
            raise ValueError(msg)
        indexes = blind_index_fields(self.model)
        names = list(self.fields) + [f.name for f in indexes.values() if f.name not in self.fields]
        if self.soft_delete and self.soft_delete not in names:
            names.append(self.soft_delete)
        object.__setattr__(self, "fields", tuple(names))
        model_fields = [concrete_field(self.model, name) for name in self.fields]
        object.__setattr__(self, "attnames", tuple(f.attname for f in model_fields))
        object.__setattr__(self, "to_python", tuple(_converter(f) for f in model_fields))
        object.__setattr__(
            self,
            "blind_indexes",
            {source: self.fields.index(f.name) for source, f in indexes.items()},
        )

    @functools.cached_property
    def label(self) -> str:
        # NOTE: cached (in the instance's __dict__, which a frozen dataclass still has): it
        # is read several times on every cache hit.
        return self.model._meta.label_lower

    @functools.cached_property
    def converters(self) -> tuple[tuple[int, Callable[[Any], Any]], ...]:
        """(position, to_python) of the payload values a JSON round trip changes, only."""
        return tuple((i, fn) for i, fn in enumerate(self.to_python) if fn is not None)

    def is_live(self, values: tuple[Any, ...] | list[Any]) -> bool:
        """False when these payload values are those of a soft-deleted row."""
        return self.soft_delete is None or values[self.fields.index(self.soft_delete)] is None

    @property
    def live_filter(self) -> dict[str, bool]:
        """QuerySet filter keyword arguments that leave soft-deleted rows out."""
        return {f"{self.soft_delete}__isnull": True} if self.soft_delete else {}


# Field types whose values JSON gives back exactly as PostgreSQL did: no to_python needed.
_JSON_NATIVE = {
    "CharField",
    "TextField",
    "EmailField",
    "SlugField",
    "URLField",
    "BooleanField",
    "IntegerField",
    "BigIntegerField",
    "SmallIntegerField",
    "PositiveIntegerField",
    "PositiveBigIntegerField",
    "PositiveSmallIntegerField",
    "AutoField",
    "BigAutoField",
    "SmallAutoField",
    "FloatField",
    "JSONField",
}


def concrete_field(model: type[models.Model], name: str) -> models.Field[Any, Any]:
    """``model``'s field ``name``, one with a column in its table (as every synced or ingested
    field is; a reverse relation is not, and raises ``TypeError``)."""
    from django.db.models import Field

    found = model._meta.get_field(name)
    if not isinstance(found, Field):
        msg = f"{model._meta.label_lower}.{name} is not a column of its table"
        raise TypeError(msg)
    return found


def column(model: type[models.Model], name: str | None = None) -> str:
    """The table column of ``model``'s field ``name``, of its primary key when None."""
    return field_column(model._meta.pk if name is None else concrete_field(model, name))


def field_column(found: models.Field[Any, Any]) -> str:
    """The table column of a concrete field (a relation through other columns, a
    GenericRelation, has none and raises ``TypeError``)."""
    if found.column is None:
        msg = f"{found.model._meta.label_lower}.{found.name} has no column of its own"
        raise TypeError(msg)
    return found.column


def _converter(model_field: models.Field[Any, Any]) -> Callable[[Any], Any] | None:
    """``to_python`` where a JSON round trip changes the type (Decimal, dates, UUID), else None."""
    target = getattr(model_field, "target_field", None) if model_field.is_relation else None
    kind = (target or model_field).get_internal_type()
    return None if kind in _JSON_NATIVE else model_field.to_python


_registry: dict[str, SyncSpec] = {}


def synced(
    *,
    tier: Tier = Tier.PUBLIC,
    fields: tuple[str, ...] | list[str],
    ttl: int = 3600,
    ttl_jitter: float = 0.1,
    pii_fields: tuple[str, ...] = (),
    prefix: str | None = None,
    soft_delete: str | None = None,
) -> Callable[[_ModelT], _ModelT]:
    """Class decorator: register a ``SyncedModel`` subclass with the sync engine."""

    def register(model: _ModelT) -> _ModelT:
        from sync.models import SyncedModel

        if not issubclass(model, SyncedModel):
            msg = f"{model.__name__} must subclass sync.models.SyncedModel to be synced"
            raise TypeError(msg)
        spec = SyncSpec(
            model=model,
            tier=tier,
            fields=tuple(fields),
            ttl=ttl,
            ttl_jitter=ttl_jitter,
            pii_fields=tuple(pii_fields),
            prefix=prefix,
            soft_delete=soft_delete,
        )
        _registry[spec.label] = spec
        return model

    return register


def spec_for(model_or_label: type[models.Model] | str) -> SyncSpec:
    label = (
        model_or_label if isinstance(model_or_label, str) else (model_or_label._meta.label_lower)
    )
    try:
        return _registry[label.lower()]
    except KeyError:
        msg = f"{label} is not a synced model (declare it with @synced)"
        raise NotSyncedError(msg) from None


def is_synced(label: str) -> bool:
    return label in _registry


def synced_models() -> list[SyncSpec]:
    return sorted(_registry.values(), key=lambda spec: spec.label)

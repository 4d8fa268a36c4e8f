"""Sync-aware bulk paths: they write like Django's, and mark the rows for write-through.

Bulk writes that bypass these helpers (plain ``QuerySet.update``, raw SQL) still get a new
version and an intent from the triggers; replay then brings them to Redis after its grace
period, and verification reports anything else.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import models, router

from sync.cache.writer import mark_changed


def update_synced(queryset: models.QuerySet[models.Model], **values: Any) -> int:
    """``queryset.update(**values)`` with write-through of every updated row on commit."""
    using = router.db_for_write(queryset.model)
    pks = list(queryset.values_list("pk", flat=True))
    count: int = queryset.model._base_manager.using(using).filter(pk__in=pks).update(**values)
    mark_changed(queryset.model._meta.label_lower, pks, using=using)
    return count


def bulk_create_synced(
    model: type[models.Model], objs: Iterable[models.Model], **kwargs: Any
) -> list[models.Model]:
    """``bulk_create`` (including ``update_conflicts`` upserts) with write-through on commit.

    ``ignore_conflicts`` only for objects that carry their pk: PostgreSQL's ``ON CONFLICT DO
    NOTHING`` gives back no pk, so a created row without one would reach Redis only through a
    later replay, silently late. Such a call is refused."""
    if kwargs.get("ignore_conflicts"):
        objs = list(objs)
        if any(obj.pk is None for obj in objs):
            msg = (
                f"bulk_create_synced({model.__name__}, ignore_conflicts=True) needs every object's "
                "pk: rows created without one could not be written through; filter out the "
                "existing rows first, or use update_conflicts"
            )
            raise ValueError(msg)
    using = kwargs.pop("using", None) or router.db_for_write(model)
    created = model._base_manager.using(using).bulk_create(objs, **kwargs)
    mark_changed(
        model._meta.label_lower, [obj.pk for obj in created if obj.pk is not None], using=using
    )
    return created

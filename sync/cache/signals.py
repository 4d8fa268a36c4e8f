"""Signal receivers: they only mark "this row changed" for the writer (STYLE: no logic here)."""

from __future__ import annotations

from django.db.models.signals import post_delete, post_save

from sync.cache.declaration import synced_models
from sync.cache.writer import mark_changed


def _changed(sender, instance, using, **kwargs) -> None:
    mark_changed(sender._meta.label_lower, [instance.pk], using=using)


def connect() -> None:
    for spec in synced_models():
        uid = f"sync-{spec.label}"
        post_save.connect(_changed, sender=spec.model, dispatch_uid=f"{uid}-save")
        post_delete.connect(_changed, sender=spec.model, dispatch_uid=f"{uid}-delete")

"""Signal receivers: they only mark "this row changed" for the writer (STYLE: no logic here)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db.backends.signals import connection_created
from django.db.models.signals import post_delete, post_migrate, post_save

from sync.cache import correlation, ignore_check
from sync.cache.declaration import is_synced
from sync.cache.writer import mark_changed

if TYPE_CHECKING:
    from django.db import models


def _changed(sender: Any, instance: models.Model, using: str, **kwargs: object) -> None:
    # NOTE: a proxy model's signals name the proxy as sender; the row is the concrete model's.
    label = sender._meta.concrete_model._meta.label_lower
    if is_synced(label):
        mark_changed(label, [instance.pk], using=using)


def connect() -> None:
    post_save.connect(_changed, dispatch_uid="sync-changed-save")
    post_delete.connect(_changed, dispatch_uid="sync-changed-delete")
    # Not a row change: the triggers' ignore check is re-installed after every migrate.
    post_migrate.connect(ignore_check.after_migrate, dispatch_uid="sync-ignore-check")
    # Writes carry the request's (or task's) id for the outbox intent they make.
    connection_created.connect(correlation.install, dispatch_uid="sync-correlation")

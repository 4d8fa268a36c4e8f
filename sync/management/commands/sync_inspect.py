""" "Why is this row stale?": one synced row in PostgreSQL and Redis, its intents, its model's
fence, the last writes that landed on its key and its last change events."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from sync.cache.declaration import spec_for
from sync.cache.inspect import row_state
from sync.management.commands._progress import engine_errors


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser) -> None:
        parser.add_argument("model", help="app_label.model, e.g. catalog.part")
        parser.add_argument("pk", help="the row's primary key")

    def handle(self, *args, model, pk, **options) -> None:
        with engine_errors():
            spec = spec_for(model.lower())
        try:
            spec.model._meta.pk.to_python(pk)
        except (ValueError, ValidationError) as e:
            msg = f"{pk!r} is not a primary key of {spec.label}: {e}"
            raise CommandError(msg) from e
        inspection = row_state(spec.model, pk)
        self.stdout.write("\n".join(inspection.lines()))

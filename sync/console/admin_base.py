"""Base classes of every console admin page: roles, PII masking, cache actions.

* ``ConsoleModelAdmin``: who may see and do what is asked of ``sync.access.roles`` (view for
  viewers, actions for operators); pages are read-only unless a class opens them; PII fields
  are masked and free text is redacted for anyone without the PII role (DESIGN I6 extended to
  pages); ``audit`` records a staff action.
* ``SyncedModelAdmin``: a ``ConsoleModelAdmin`` for a ``@synced`` model, with the "Resync to
  cache" and "Verify against the cache" actions on its changelist; its PII fields default to
  the model's declaration.
* Lists apply declared filters only, and without the PII role no filter, search, ordering,
  date hierarchy or ``_to_field`` that touches a PII field (``sync.console.lookups``, I11).
* ``ConsoleInlineMixin``: the same masking for inlines (``Property`` under ``Seller``).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable
from typing import Any

from django.contrib import admin, messages
from django.db import models
from django.db.models import Model, QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from sync.access import roles
from sync.cache.declaration import concrete_field, spec_for
from sync.cache.exceptions import CacheUnavailableError
from sync.cache.rows import resync_rows, verify_rows
from sync.cache.verification import VerifyReport
from sync.console import formats
from sync.console.audit import record_staff_action
from sync.console.lookups import (
    BadAdminQueryError,
    GuardedChangeList,
    filter_field_path,
    touches_pii,
)
from sync.console.masking import mask
from sync.models import SyncedModel
from sync.redaction import redact

# Badge tones by meaning: classes of static/console/admin.css (no inline style: the CSP).
TONES = ("ok", "warn", "bad", "info", "muted")


def badge(label: object, tone: str = "muted") -> str:
    """A coloured pill for a status (``format_html``: the label is escaped)."""
    return format_html(
        '<span class="console-badge tone-{}">{}</span>', tone if tone in TONES else "muted", label
    )


BRIEF_CHARS = 90  # a free text in a list: cut at a word, the whole text on hover


def readable(value: object) -> str:
    """A stored text or JSON value as a sentence, never as JSON: ``rows: 1; written: 1``."""
    if value is None or value == "":
        return ""
    if isinstance(value, dict):
        return "; ".join(f"{_words(key)}: {readable(item)}" for key, item in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(readable(item) for item in value)
    return str(value)


def _words(key: object) -> str:
    """A stored key as words: ``batch_size`` reads ``batch size``."""
    return str(key).replace("_", " ")


def brief(text: str, limit: int = BRIEF_CHARS) -> str:
    """``text`` on one line, cut at a word near ``limit`` characters with ``…``; the whole text
    is the ``title`` (a tooltip) of what is shown."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text or "-"
    cut = text[:limit].rsplit(" ", 1)[0] if " " in text[:limit] else text[:limit]
    return format_html('<span class="console-brief" title="{}">{}…</span>', text, cut.rstrip(",;:"))


ISO_TIME = re.compile(r"\b\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?")


def _console_time(match: re.Match) -> str:
    """An ISO time in a text (``2026-12-07T02:16:57.88Z``) as the console writes times."""
    try:
        value = dt.datetime.fromisoformat(match.group(0).replace("Z", "+00:00"))
    except ValueError:
        return match.group(0)
    if timezone.is_naive(value):
        value = timezone.make_aware(value, dt.UTC)
    return formats.when(value)


STREAM_ID = re.compile(r"\b\d{13}-\d+\b")  # a Redis stream entry id: milliseconds-counter
STREAM_MARK = "streamentryid"
SECONDS = re.compile(r"\b(\d[\d,]*) s\b")


def _long_seconds(match: re.Match) -> str:
    """``23,744 s`` as ``6 h 35 min``; under a minute as it was."""
    seconds = int(match.group(1).replace(",", ""))
    return formats.duration(seconds) if seconds >= 60 else match.group(0)


VERSION = re.compile(r"\b(version|versions?) (\d{4,})\b")


def inspector_text(lines: Iterable[str]) -> str:
    """The cache inspector's lines for a page: redacted, in the console's formats (times,
    durations over a minute, versions with separators). A change event's stream id is a clock
    and a counter, not PII: kept out of the redaction, which read it as a card number."""
    text = "\n".join(lines)
    ids = STREAM_ID.findall(text)
    text = redact(STREAM_ID.sub(STREAM_MARK, text))
    for stream_id in ids:
        text = text.replace(STREAM_MARK, stream_id, 1)
    text = ISO_TIME.sub(_console_time, text)
    text = SECONDS.sub(_long_seconds, text)
    return VERSION.sub(lambda m: f"{m.group(1)} {formats.number(int(m.group(2)))}", text)


def _cell(value: object) -> str:
    if isinstance(value, bool) or value is None:
        return formats.EMPTY if value is None else ("yes" if value else "no")
    if isinstance(value, int | float):
        return formats.number(value)
    return readable(value) or formats.EMPTY


def json_table(value: object) -> str:
    """A stored JSON value as a small table: ``{field: [before, after]}`` (a change log) as
    field | before | after, a list of objects (an order's items) with a column per key, an
    object as name | value; anything else as text."""
    if value in (None, {}, []):
        return formats.EMPTY
    table = '<table class="console-json"><thead><tr>{}</tr></thead><tbody>{}</tbody></table>'
    head = "<th>{}</th>"
    if isinstance(value, dict):
        pairs = all(isinstance(v, list) and len(v) == 2 for v in value.values())
        heads: tuple[str, ...] = ("field", "before", "after") if pairs else ("name", "value")
        rows = [(_words(key), *(item if pairs else (item,))) for key, item in value.items()]
    elif isinstance(value, list) and all(isinstance(item, dict) for item in value):
        keys = tuple(dict.fromkeys(key for item in value for key in item))
        heads = tuple(_words(key) for key in keys)
        rows = [tuple(item.get(key) for key in keys) for item in value]
    else:
        return readable(value)
    return format_html(
        table,
        format_html_join("", head, ((h,) for h in heads)),
        format_html_join(
            "",
            "<tr>{}</tr>",
            ((format_html_join("", "<td>{}</td>", ((_cell(c),) for c in row)),) for row in rows),
        ),
    )


def pii_kind(field_name: str) -> str:
    """How a PII field is masked: e-mail and phone keep their shape, the rest its first letter."""
    if "email" in field_name:
        return "email"
    if "phone" in field_name:
        return "phone"
    return "text"


def _show_pii(request: HttpRequest) -> bool:
    return roles.can_view_pii(request.user)


def bad_request(request: HttpRequest, admin_site: admin.AdminSite, reason: str) -> TemplateResponse:
    """A 400 page in the console's frame that says what was wrong with the request."""
    context = {**admin_site.each_context(request), "title": "Bad request", "reason": reason}
    return TemplateResponse(request, "admin/console/bad_request.html", context, status=400)


class PiiMaskingMixin:
    """Masks ``pii_fields`` and redacts ``redacted_fields`` for users without the PII role.

    Each such field gets a display function ``<name>_masked`` / ``<name>_redacted`` on the
    admin instance; for those users, list columns, detail fields and search fields are swapped
    or dropped, so no page, form or search result carries the value (nor a way to probe it).
    """

    pii_fields: tuple[str, ...] = ()
    pii_kinds: dict[str, str] = {}  # field -> kind, where the name does not say
    redacted_fields: tuple[str, ...] = ()

    def _install_masks(self, model: type[Model]) -> None:
        for name in self.pii_fields:
            setattr(self, f"{name}_masked", self._masked_display(model, name))
        for name in self.redacted_fields:
            setattr(self, f"{name}_redacted", self._redacted_display(model, name))
            # In lists: one line of it, cut, redacted or (PII role) as stored.
            setattr(self, f"{name}_brief", self._brief_display(model, name, redacted=True))
            setattr(self, f"{name}_brief_raw", self._brief_display(model, name, redacted=False))

    @staticmethod
    def _brief_display(model: type[Model], name: str, *, redacted: bool) -> Callable[[Model], str]:
        def display(obj: Model) -> str:
            text = readable(getattr(obj, name))
            if redacted and not getattr(obj, "_console_masked", False):
                text = redact(text)
            return brief(text)

        display.short_description = concrete_field(model, name).verbose_name  # type: ignore[attr-defined]
        return display

    def _masked_display(self, model: type[Model], name: str) -> Callable[[Model], str]:
        kind = self.pii_kinds.get(name) or pii_kind(name)

        def display(obj: Model) -> str:
            if getattr(obj, "_console_masked", False):
                return getattr(obj, name)  # masked in memory by get_object already
            return mask(getattr(obj, name), kind=kind)

        display.short_description = concrete_field(model, name).verbose_name  # type: ignore[attr-defined]
        return display

    @staticmethod
    def _redacted_display(model: type[Model], name: str) -> Callable[[Model], str]:
        def display(obj: Model) -> str:
            value = getattr(obj, name)
            if getattr(obj, "_console_masked", False):
                return value
            return redact(readable(value))

        display.short_description = concrete_field(model, name).verbose_name  # type: ignore[attr-defined]
        return display

    def _swap(self, request: HttpRequest, names: Iterable[Any]) -> list[Any]:
        if _show_pii(request):
            return list(names)
        swapped = []
        for name in names:
            if name in self.pii_fields:
                swapped.append(f"{name}_masked")
            elif name in self.redacted_fields:
                swapped.append(f"{name}_redacted")
            else:
                swapped.append(name)
        return swapped

    def _hidden_names(self, request: HttpRequest) -> list[str]:
        if _show_pii(request):
            return []
        return [f"{n}_masked" for n in self.pii_fields] + [
            f"{n}_redacted" for n in self.redacted_fields
        ]

    def get_fieldsets(self, request: HttpRequest, obj: Model | None = None):
        return self.swap_fieldsets(request, super().get_fieldsets(request, obj))  # type: ignore[misc]

    def swap_fieldsets(self, request: HttpRequest, fieldsets: Iterable[Any]) -> list[Any]:
        """``fieldsets`` with PII fields masked and free text redacted for this user."""
        seen: set[str] = set()

        def once(names: list[str]) -> list[str]:
            # NOTE: without declared fieldsets Django lists the form's fields and then the
            # read-only ones, so a swapped field would come twice.
            fresh = [n for n in names if n not in seen]
            seen.update(fresh)
            return fresh

        swapped = []
        for title, options in fieldsets:
            fields: list[str | tuple[str, ...]] = []
            for entry in options["fields"]:
                if isinstance(entry, list | tuple):
                    row = once(self._swap(request, entry))
                    if row:
                        fields.append(tuple(row))
                else:
                    fields.extend(once(self._swap(request, [entry])))
            swapped.append((title, {**options, "fields": fields}))
        return swapped

    def get_readonly_fields(self, request: HttpRequest, obj: Model | None = None):
        readonly = self._swap(request, super().get_readonly_fields(request, obj))  # type: ignore[misc]
        return readonly + [n for n in self._hidden_names(request) if n not in readonly]

    def get_list_display(self, request: HttpRequest):
        names = list(super().get_list_display(request))  # type: ignore[misc]
        suffix = "_brief_raw" if _show_pii(request) else "_brief"
        return self._swap(
            request, [f"{name}{suffix}" if name in self.redacted_fields else name for name in names]
        )

    def get_object(self, request: HttpRequest, object_id: str, from_field: str | None = None):
        """For a user who may only look: the object with its PII masked and its free text
        redacted in memory (never saved), so that its ``str()`` in titles, breadcrumbs and
        history pages carries none either."""
        obj = super().get_object(request, object_id, from_field)  # type: ignore[misc]
        if obj is None or _show_pii(request) or self.has_change_permission(request, obj):  # type: ignore[attr-defined]
            return obj
        for name in self.pii_fields:
            setattr(obj, name, getattr(self, f"{name}_masked")(obj))
        for name in self.redacted_fields:
            setattr(obj, name, getattr(self, f"{name}_redacted")(obj))
        obj._console_masked = True
        return obj


class GuardedLookupsMixin:
    """What a list's URL may ask for (DESIGN I11, ``sync.console.lookups``): its declared
    filters only, for everyone; without the PII role no filter, search, ordering, date
    hierarchy or ``_to_field`` that touches a PII field. Every console page has it, and the
    site gives it to the admin classes of other apps it registers (users, beat, axes)."""

    model: type[Model]  # a ModelAdmin's
    admin_site: admin.AdminSite

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[GuardedChangeList]:
        return GuardedChangeList

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None):
        """Django's list; a filter that is not declared, or a value a filter cannot take, is
        a 400 naming it (Django answered the first with a bare 400 and the second with its
        "database error" page)."""
        try:
            return super().changelist_view(request, extra_context)  # type: ignore[misc]
        except BadAdminQueryError as e:
            return bad_request(request, self.admin_site, str(e))

    def get_object(self, request: HttpRequest, object_id: str, from_field: str | None = None):
        # NOTE: Django passes an empty ``?_to_field=`` on as a field name: a 500.
        return super().get_object(request, object_id, from_field or None)  # type: ignore[misc]

    def get_search_fields(self, request: HttpRequest):
        fields = super().get_search_fields(request)  # type: ignore[misc]
        if _show_pii(request):
            return fields
        return [
            f for f in fields if not touches_pii(self.model, str(f).lstrip("^=@"), self.admin_site)
        ]

    def get_list_filter(self, request: HttpRequest):
        """Declared filters; without the PII role none on a PII field (its choices would list
        the values, and choosing one would count the rows that hold it)."""
        filters = super().get_list_filter(request)  # type: ignore[misc]
        if _show_pii(request):
            return filters
        return [
            item
            for item in filters
            if not (
                (path := filter_field_path(item)) and touches_pii(self.model, path, self.admin_site)
            )
        ]

    def to_field_allowed(self, request: HttpRequest, to_field: str) -> bool:
        """``?_to_field=email`` would make ``/<guessed address>/change/`` an oracle."""
        if not _show_pii(request) and touches_pii(self.model, to_field, self.admin_site):
            return False
        return super().to_field_allowed(request, to_field)  # type: ignore[misc]


class ConsoleModelAdmin(PiiMaskingMixin, GuardedLookupsMixin, admin.ModelAdmin):
    """A console page: viewers read it, operators run its actions, nobody adds or deletes.

    ``editable = True`` hands add/change/delete back to Django's model permissions (a
    superuser, or a user explicitly granted them); ``operator_can_change = True`` lets
    operators edit (the configuration).
    """

    editable = False
    operator_can_change = False
    list_per_page = 50
    show_full_result_count = False  # an exact COUNT(*) of a big log table per page view

    def __init__(self, model: type[Model], admin_site: admin.AdminSite) -> None:
        super().__init__(model, admin_site)
        self._install_masks(model)
        self._install_formats(model)
        self._install_tables(model)

    # ------------------------------------------------------------------ list formats
    # A list column that is a model's time or whole-number field is shown in the console's one
    # format (sync.console.formats): ``2026-12-06 20:54:21`` (which wraps between the date and
    # the time in a narrow column), ``4,140``. Keys (``*_number``, ``*_id``, the primary key)
    # stay as they are.
    FORMAT_SUFFIX = "_fmt"

    def _install_formats(self, model: type[Model]) -> None:
        self._formatted: set[str] = set()
        for field in model._meta.concrete_fields:
            if field.primary_key or field.is_relation or field.name in self.pii_fields:
                continue
            if field.choices:
                continue
            if isinstance(field, models.DateTimeField):
                display = self._when_display(field)
            elif isinstance(field, models.IntegerField) and not field.name.endswith(
                ("_number", "_id", "_pk")
            ):
                display = self._number_display(field)
            else:
                continue
            setattr(self, f"{field.name}{self.FORMAT_SUFFIX}", display)
            self._formatted.add(field.name)

    @staticmethod
    def _when_display(field: models.Field) -> Callable[[Model], str]:
        def display(obj: Model) -> str:
            value = getattr(obj, field.name)
            if value is None:  # pragma: no cover - no console list shows a nullable time
                return formats.EMPTY
            return format_html('<span class="console-when">{}</span>', formats.when(value))

        # "last seen", not "last seen at": a narrow header on one or two lines.
        name = str(field.verbose_name)
        display.short_description = name.removesuffix(" at") or name  # type: ignore[attr-defined]
        display.admin_order_field = field.name  # type: ignore[attr-defined]
        return display

    @staticmethod
    def _number_display(field: models.Field) -> Callable[[Model], str]:
        def display(obj: Model) -> str:
            return formats.number(getattr(obj, field.name))

        display.short_description = field.verbose_name  # type: ignore[attr-defined]
        display.admin_order_field = field.name  # type: ignore[attr-defined]
        return display

    # ------------------------------------------------------------------ JSON as tables
    # A JSON field a person only reads (a change log's changes, a snapshot, an order's items,
    # an event's details) is a table on its page, never JSON text.
    TABLE_SUFFIX = "_table"

    def _install_tables(self, model: type[Model]) -> None:
        self._json_fields: set[str] = set()
        for field in model._meta.concrete_fields:
            if isinstance(field, models.JSONField) and field.name not in self.pii_fields:
                setattr(self, f"{field.name}{self.TABLE_SUFFIX}", self._table_display(field))
                self._json_fields.add(field.name)

    @staticmethod
    def _table_display(field: models.Field) -> Callable[[Model], str]:
        def display(obj: Model) -> str:
            return json_table(getattr(obj, field.name))

        display.short_description = field.verbose_name  # type: ignore[attr-defined]
        return display

    def _table_names(self, request: HttpRequest, obj: Model | None) -> set[str]:
        """The JSON fields shown as tables on this page: those nobody edits here."""
        if obj is None or not self._json_fields:
            return set()
        if not self.has_change_permission(request, obj):
            return set(self._json_fields)
        return self._json_fields & set(super().get_readonly_fields(request, obj))

    def get_fieldsets(self, request: HttpRequest, obj: Model | None = None):
        fieldsets = super().get_fieldsets(request, obj)
        tables = self._table_names(request, obj)
        if not tables:
            return fieldsets

        seen: set[str] = set()

        def swap(name: str) -> str | None:
            name = f"{name}{self.TABLE_SUFFIX}" if name in tables else name
            # NOTE: without declared fieldsets Django lists the form's fields and then the
            # read-only ones: a swapped field would come twice.
            if name in seen:
                return None
            seen.add(name)
            return name

        swapped = []
        for title, options in fieldsets:
            fields: list[str | tuple[str, ...]] = []
            for entry in options["fields"]:
                if isinstance(entry, list | tuple):
                    row = tuple(n for n in map(swap, entry) if n)
                    if row:
                        fields.append(row)
                elif (name := swap(entry)) is not None:
                    fields.append(name)
            swapped.append((title, {**options, "fields": fields}))
        return swapped

    def get_readonly_fields(self, request: HttpRequest, obj: Model | None = None):
        readonly = list(super().get_readonly_fields(request, obj))
        return readonly + [
            f"{name}{self.TABLE_SUFFIX}" for name in sorted(self._table_names(request, obj))
        ]

    def _formatted_name(self, name: object) -> object:
        if isinstance(name, str) and name in self._formatted:
            return f"{name}{self.FORMAT_SUFFIX}"
        return name

    def get_list_display(self, request: HttpRequest):
        return [self._formatted_name(name) for name in super().get_list_display(request)]

    def get_list_display_links(self, request: HttpRequest, list_display):
        links = super().get_list_display_links(request, list_display)
        if links is None:  # pragma: no cover - Django's "no links"; no console list sets it
            return None
        return [self._formatted_name(name) for name in links]

    def has_module_permission(self, request: HttpRequest) -> bool:
        return roles.can_view(request.user)

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return roles.can_view(request.user)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self.editable and super().has_add_permission(request)

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        if self.operator_can_change and roles.can_operate(request.user):
            return True
        return self.editable and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self.editable and super().has_delete_permission(request, obj)

    def has_operate_permission(self, request: HttpRequest) -> bool:
        """``@admin.action(permissions=["operate"])``: operators (and superusers) only."""
        return roles.can_operate(request.user)

    def audit(
        self,
        request: HttpRequest,
        action: str,
        *,
        target: object = "",
        details: dict[str, Any] | None = None,
    ) -> None:
        record_staff_action(request, action=action, target=str(target), details=details)


def verify_summary(report: VerifyReport) -> str:
    """One line for a person: what was compared and what differs (no "extra" keys: only the
    selected rows were looked at)."""
    return (
        f"Verified {report.rows} row(s) of {report.label} against the cache: "
        f"{report.consistent} consistent ({report.fraction:.2%}), {report.missing} "
        f"missing, {report.stale} stale."
    )


class SyncedModelAdmin(ConsoleModelAdmin):
    """A synced model's page: its PII masked, and the two cache actions for operators."""

    actions = ("resync_to_cache", "verify_cache")

    def __init__(self, model: type[Model], admin_site: admin.AdminSite) -> None:
        if not self.pii_fields:
            self.pii_fields = spec_for(model._meta.label_lower).pii_fields
        super().__init__(model, admin_site)

    # "Why is this row stale?" on every change page: sync/cache/inspect.py, read-only text.
    CACHE_STATE = "cache_state"

    # A synced row's ``version`` is the engine's write counter (DESIGN I2), not a count of its
    # edits; ``updated_at_ns`` the database clock of its last write. Pages say so.
    ROW_VERSION_HELP = (
        "The engine's write counter: one sequence shared by every synced row, "
        "so it orders writes (the cache keeps the highest) and counts nothing."
    )

    @admin.display(description="row version")
    def row_version(self, obj: SyncedModel) -> str:
        return format_html(
            '{}<span class="console-sub">{}</span>',
            formats.number(obj.version),
            self.ROW_VERSION_HELP,
        )

    @admin.display(description="last write")
    def last_write(self, obj: SyncedModel) -> str:
        if not obj.updated_at_ns:
            return formats.EMPTY
        at = dt.datetime.fromtimestamp(obj.updated_at_ns / 1e9, tz=dt.UTC)
        return format_html(
            '{}<span class="console-sub">{}</span>',
            formats.when(at),
            "The database's clock when the row was last written.",
        )

    def get_readonly_fields(self, request: HttpRequest, obj: Model | None = None):
        fields = list(super().get_readonly_fields(request, obj))
        return [*fields, self.CACHE_STATE] if obj is not None else fields

    def get_fieldsets(self, request: HttpRequest, obj: Model | None = None):
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None:
            return fieldsets
        without = [
            (name, {**options, "fields": [f for f in options["fields"] if f != self.CACHE_STATE]})
            for name, options in fieldsets
        ]
        return [*without, ("Cache state — why is this row stale?", {"fields": [self.CACHE_STATE]})]

    @admin.display(description="PostgreSQL, Redis, intents, fence, last writes and events")
    def cache_state(self, obj: Model) -> str:
        from sync.cache.inspect import row_state

        # NOTE: an intent's last error is stored redacted; redacted again for the page, as
        # every free text of the console is (a bug upstream must not put PII on a page).
        return format_html(
            '<pre class="sync-inspect">{}</pre>',
            inspector_text(row_state(type(obj), obj.pk).lines()),
        )

    @admin.action(permissions=["operate"], description="Resync selected rows to the cache")
    def resync_to_cache(self, request: HttpRequest, queryset: QuerySet) -> None:
        label = self.model._meta.label_lower
        pks = list(queryset.values_list("pk", flat=True))
        try:
            result = resync_rows(model=self.model, pks=pks)
        except CacheUnavailableError as e:
            self.audit(
                request,
                "cache.resync",
                target=label,
                details={"rows": len(pks), "error": type(e).__name__},
            )
            self.message_user(
                request,
                f"The cache Redis is unavailable; nothing was written "
                f"({e}). Replay and verification repair it once it is back.",
                messages.ERROR,
            )
            return
        self.audit(
            request,
            "cache.resync",
            target=label,
            details={"rows": result.rows, "written": result.written},
        )
        self.message_user(request, str(result), messages.SUCCESS)

    @admin.action(permissions=["operate"], description="Verify selected rows against the cache")
    def verify_cache(self, request: HttpRequest, queryset: QuerySet) -> None:
        label = self.model._meta.label_lower
        pks = list(queryset.values_list("pk", flat=True))
        try:
            report = verify_rows(model=self.model, pks=pks)
        except CacheUnavailableError as e:
            self.audit(
                request,
                "cache.verify",
                target=label,
                details={"rows": len(pks), "error": type(e).__name__},
            )
            self.message_user(
                request, f"The cache Redis is unavailable: nothing verified ({e}).", messages.ERROR
            )
            return
        self.audit(
            request,
            "cache.verify",
            target=label,
            details={"rows": report.rows, "missing": report.missing, "stale": report.stale},
        )
        if report.ok:
            self.message_user(request, verify_summary(report), messages.SUCCESS)
            return
        examples = ", ".join(report.examples["missing"][:5] + report.examples["stale"][:5])
        self.message_user(
            request,
            f"{verify_summary(report)} For example: "
            f'{examples}. "Resync selected rows to '
            'the cache" repairs them.',
            messages.WARNING,
        )


class ConsoleInlineMixin(PiiMaskingMixin):
    """Inlines under a console page: read-only, masked like their parent."""

    extra = 0
    can_delete = False
    show_change_link = False

    def __init__(self, parent_model: type[Model], admin_site: admin.AdminSite) -> None:
        super().__init__(parent_model, admin_site)  # type: ignore[call-arg]
        self._install_masks(self.model)  # type: ignore[attr-defined]

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return roles.can_view(request.user)

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

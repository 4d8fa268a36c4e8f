"""What a changelist's URL may ask for: declared filters only, and
nothing that touches personal data the user may not see.

Django's admin applies any ``?field=…``, ``?field__regex=…`` or ``?fk__field__…`` the query
string names; a result count then answers "does a row's e-mail start with ``a``?", and a
viewer rebuilt whole addresses from it. ``GuardedChangeList`` applies only the parameters a
declared list filter or the date hierarchy consumes (for everyone), refuses the rest with a
400 that names the parameter, and (for users without the PII role) drops the declared
filters, the date hierarchy and any ordering that touches a PII field, through foreign keys
too. Bad values of declared filters are a 400 as well (``BadAdminQueryError``), never the
admin's "database error" page nor a 500. (No foreign key here has ``limit_choices_to``, whose
raw-id popup would pass its own parameters: one that gets it declares them as a filter.)

A model's PII fields: the sync declaration's ``pii_fields``, its console page's
``pii_fields`` and ``redacted_fields`` (free text that may quote a person), and the staff
user's names and address (``EXTRA_PII``).
"""

from __future__ import annotations

from typing import Any

from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import FieldDoesNotExist, SuspiciousOperation
from django.db.models import F, Model
from django.db.models.expressions import BaseExpression
from django.http import HttpRequest

from sync.access import roles
from sync.cache.declaration import is_synced, spec_for

LOOKUP_SEP = "__"
# Personal data of models that have no console page declaring it: staff users' names and
# addresses (the configuration's alert recipients are masked as PII too).
EXTRA_PII: dict[str, tuple[str, ...]] = {"auth.user": ("email", "first_name", "last_name")}


class BadAdminQueryError(SuspiciousOperation):
    """A changelist URL asked for a filter that is not declared, or gave a declared filter a
    value it cannot take: answered with a 400 naming it (``ConsoleModelAdmin``)."""


def pii_fields_of(model: type[Model], admin_site: Any) -> frozenset[str]:
    """Names of ``model``'s fields that hold personal data or free text that may quote it."""
    label = model._meta.label_lower
    names = set(EXTRA_PII.get(label, ()))
    if is_synced(label):
        names |= set(spec_for(label).pii_fields)
    model_admin = admin_site._registry.get(model)
    names |= set(getattr(model_admin, "pii_fields", ()))
    names |= set(getattr(model_admin, "redacted_fields", ()))
    return frozenset(names)


def touches_pii(model: type[Model], path: str, admin_site: Any) -> bool:
    """True when the lookup or ordering ``path`` (``customer__email__icontains``,
    ``-name``, ``pk``) reads a PII field of ``model`` or of a model it traverses to."""
    current = model
    for part in path.lstrip("-+?").split(LOOKUP_SEP):
        name = current._meta.pk.name if part == "pk" else part
        try:
            field = current._meta.get_field(name)
        except FieldDoesNotExist:
            return False  # a transform or lookup type: the fields before it decided
        if field.name in pii_fields_of(current, admin_site):
            return True
        if field.related_model is None:
            return False
        current = field.related_model
    return False


def filter_field_path(item: Any) -> str | None:
    """The field path of a ``list_filter`` entry (``None`` for a ``SimpleListFilter``)."""
    if isinstance(item, list | tuple):
        item = item[0]
    return item if isinstance(item, str) else None


def _ordering_fields(entry: Any) -> list[str]:
    """The field paths an ordering entry reads: a name, an ``F`` or any expression over them."""
    if isinstance(entry, str):
        return [entry]
    # NOTE (ignores): Django's F has the name it was made with; django-stubs' F has none.
    if isinstance(entry, F):
        return [entry.name]  # type: ignore[attr-defined]
    expression: BaseExpression = entry  # Django orders by names, F()s and expressions only
    return [part.name for part in expression.flatten() if isinstance(part, F)]  # type: ignore[attr-defined]


class GuardedChangeList(ChangeList):
    """A changelist that applies declared filters only, and hides PII-bound ones."""

    def __init__(
        self,
        request: HttpRequest,
        model: type[Model],
        list_display,
        list_display_links,
        list_filter,
        date_hierarchy,
        search_fields,
        list_select_related,
        list_per_page,
        list_max_show_all,
        list_editable,
        model_admin,
        sortable_by,
        search_help_text,
    ) -> None:
        self._shows_pii = roles.can_view_pii(request.user)
        self._site = model_admin.admin_site
        if (
            date_hierarchy
            and not self._shows_pii
            and touches_pii(model, date_hierarchy, self._site)
        ):
            date_hierarchy = None
        super().__init__(
            request,
            model,
            list_display,
            list_display_links,
            list_filter,
            date_hierarchy,
            search_fields,
            list_select_related,
            list_per_page,
            list_max_show_all,
            list_editable,
            model_admin,
            sortable_by,
            search_help_text,
        )

    def get_filters(self, request: HttpRequest):
        params = self.get_filters_params()
        try:
            specs, has_filters, remaining, duplicates, active = super().get_filters(request)
        except (ValueError, OverflowError) as e:
            # The date hierarchy's year 9999 + one month, or year 10000: out of range.
            msg = f"The date is out of range: {e}"
            raise BadAdminQueryError(msg) from e
        allowed = self._date_hierarchy_bounds(params)
        undeclared = sorted(key for key in remaining if key not in allowed)
        if undeclared:
            names = ", ".join(repr(key) for key in undeclared)
            msg = (
                f"This list cannot be filtered by {names}: only by the filters it shows "
                "in its sidebar (and its date links)."
            )
            raise BadAdminQueryError(msg)
        return specs, has_filters, remaining, duplicates, active

    def _date_hierarchy_bounds(self, params: dict[str, list[str]]) -> set[str]:
        """The bounds Django turns the date hierarchy's year/month/day links into."""
        if self.date_hierarchy and f"{self.date_hierarchy}__year" in params:
            return {f"{self.date_hierarchy}__gte", f"{self.date_hierarchy}__lt"}
        return set()

    def get_queryset(self, request: HttpRequest, exclude_parameters=None):
        try:
            return super().get_queryset(request, exclude_parameters)
        except IncorrectLookupParameters as e:
            msg = f"A filter of this list got a value it cannot take: {_reason(e)}"
            raise BadAdminQueryError(msg) from e

    def get_ordering(self, request: HttpRequest, queryset):
        ordering = super().get_ordering(request, queryset)
        if self._shows_pii:
            return ordering
        # NOTE: the order of rows sorted by a hidden column tells where its values fall.
        return [
            entry
            for entry in ordering
            if not any(
                touches_pii(self.model, path, self._site) for path in _ordering_fields(entry)
            )
        ]


def nul_in_request(request: HttpRequest) -> str:
    """Why the request cannot be answered, when a NUL byte is in its path, query or form."""
    if "\x00" in request.path:
        return "The address contains a NUL byte."
    for where, data in (("query string", request.GET), ("form", request.POST)):
        for key, values in data.lists():
            if "\x00" in key or any("\x00" in value for value in values):
                return f"The {where} contains a NUL byte (parameter {key[:40]!r})."
    return ""


def _reason(error: Exception) -> str:
    """The message inside (Django wraps a filter's ``ValidationError`` in its own error)."""
    inner = error.args[0] if error.args and isinstance(error.args[0], Exception) else error
    messages = getattr(inner, "messages", None)
    return "; ".join(messages) if messages else str(inner)

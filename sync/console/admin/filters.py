"""Changelist filters of the console: a date range, and a run's id/source/trigger/status on the
record and error logs (which carry the run's id, not a foreign key).

A list applies only the parameters its declared filters take (``sync.console.lookups``), so
every parameter a link of the console uses is one of these filters.
"""

from __future__ import annotations

import datetime

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from sync.cache.declaration import concrete_field
from sync.models import SyncRun


class DateRangeFilter(admin.DateFieldListFilter):
    """Django's date links (today, past 7 days …) plus a from/before form for any range."""

    template = "admin/sync/date_range_filter.html"

    def __init__(self, field, request, params, model, model_admin, field_path) -> None:
        for bound in (f"{field_path}__gte", f"{field_path}__lt"):
            if bound not in params:
                continue
            values = [v for v in params[bound] if v]
            if not values:
                del params[bound]  # a half-filled form: that side of the range is open
            elif isinstance(field, models.DateTimeField):
                # The form sends dates: midnight in the site's time zone, never naive.
                params[bound] = [_midnight(v) for v in values]
        super().__init__(field, request, params, model, model_admin, field_path)
        own = set(self.expected_parameters())
        # The form submits only its two dates: every other filter and the search stay.
        self.other_params = [
            (key, value)
            for key, values in request.GET.lists()
            if key not in own
            for value in values
        ]
        self.value_since = self.used_parameters.get(self.lookup_kwarg_since, "")
        self.value_until = self.used_parameters.get(self.lookup_kwarg_until, "")


def _midnight(value: str) -> str:
    try:
        day = datetime.date.fromisoformat(value)
    except ValueError:
        return value  # a datetime already, or rubbish Django reports as a bad lookup
    return timezone.make_aware(datetime.datetime.combine(day, datetime.time())).isoformat()


class _RunFieldFilter(admin.SimpleListFilter):
    """Rows whose run has this ``run_field`` value (an indexed subquery on the runs)."""

    run_field = ""

    def lookups(self, request: HttpRequest, model_admin):
        field = concrete_field(SyncRun, self.run_field)
        if field.choices:
            return field.choices
        values = (
            SyncRun.objects.order_by(self.run_field)
            .values_list(self.run_field, flat=True)
            .distinct()
        )
        return [(value, value) for value in values]

    def queryset(self, request: HttpRequest, queryset: QuerySet):
        if self.value() is None:
            return queryset
        runs = SyncRun.objects.filter(**{self.run_field: self.value()}).values("pk")
        return queryset.filter(run_id__in=runs)


class RunSourceFilter(_RunFieldFilter):
    title = "source"
    parameter_name = "run_source"
    run_field = "source"


class RunTriggerFilter(_RunFieldFilter):
    title = "run trigger"
    parameter_name = "run_trigger"
    run_field = "trigger"


class RunStatusFilter(_RunFieldFilter):
    title = "run status"
    parameter_name = "run_status"
    run_field = "status"


MAX_RUN_ID = 2**63 - 1  # a bigint


class RunIdFilter(admin.SimpleListFilter):
    """``?run_id=42``, the link on a run's page: one run's rows (shown while it is chosen)."""

    title = "run"
    parameter_name = "run_id"

    def lookups(self, request: HttpRequest, model_admin):
        value = self.value()
        return [(value, f"run {value}")] if value else []

    def queryset(self, request: HttpRequest, queryset: QuerySet):
        # NOTE: only called with a value: without one, lookups() offers nothing, and a filter
        # without choices is not applied.
        value = self.value() or ""
        if not value.isascii() or not value.isdigit() or int(value) > MAX_RUN_ID:
            msg = f"a run id is a number up to {MAX_RUN_ID}, not {value[:40]!r}"
            raise IncorrectLookupParameters(msg)
        return queryset.filter(run_id=int(value))

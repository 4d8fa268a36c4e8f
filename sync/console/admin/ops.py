"""Alerts (acknowledged by operators), the configuration (a validated form that moves the beat
schedule with it), run and health metrics, and the audit list of staff actions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Case, Model, QuerySet, Value, When
from django.http import HttpRequest
from django.utils.html import format_html

from sync.access import roles
from sync.console import formats
from sync.console.admin.filters import DateRangeFilter
from sync.console.admin.runs import RUN_TONES, run_link
from sync.console.admin_base import ConsoleModelAdmin, badge
from sync.models import StaffAction, SyncAlert, SyncConfig, SyncHealthMetric, SyncMetric
from sync.ops.alerts import alert_acknowledge
from sync.ops.source_settings import config_update, config_validate, is_engine

SEVERITY_TONES: dict[str, str] = {
    SyncAlert.Severity.INFO: "info",
    SyncAlert.Severity.WARNING: "warn",
    SyncAlert.Severity.CRITICAL: "bad",
}


class AcknowledgedFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin) -> list:
        return [("open", "Open"), ("acknowledged", "Acknowledged")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() in ("open", "acknowledged"):
            return queryset.filter(acknowledged_at__isnull=self.value() == "open")
        return queryset


def formatted(field: str, description: str, shown: Callable[[Any], str] = formats.number):
    """A list column of ``field`` in the console's format (sortable by the field)."""

    @admin.display(description=description, ordering=field)
    def column(self, obj) -> str:
        return shown(getattr(obj, field))

    return column


@admin.register(SyncAlert)
class SyncAlertAdmin(ConsoleModelAdmin):
    # NOTE: fits 1280 px beside both sidebars: severity, type and source are one cell, the
    # message is cut (whole text on hover), the first sighting is on the alert's page.
    list_display = ("alert", "message", "times", "last_seen_at", "state")
    list_display_links = ("alert",)
    list_filter = (
        AcknowledgedFilter,
        "severity",
        "alert_type",
        "source",
        ("last_seen_at", DateRangeFilter),
    )
    search_fields = ("source", "alert_type")
    ordering = ("-last_seen_at",)
    date_hierarchy = "last_seen_at"
    redacted_fields = ("message", "context")
    fields = (
        "alert_type",
        "severity_badge",
        "source",
        "message",
        "context",
        "occurrence",
        "count",
        "first_seen_at",
        "last_seen_at",
        "last_emailed_at",
        "acknowledged_by",
        "acknowledged_at",
    )
    readonly_fields = ("severity_badge",)
    actions = ("acknowledge",)

    @admin.display(description="alert", ordering="alert_type")
    def alert(self, obj: SyncAlert) -> str:
        return format_html(
            '{} <span class="console-nowrap">{}</span><span class="console-sub">{}</span>',
            self.severity_badge(obj),
            obj.get_alert_type_display(),
            obj.source,
        )

    @admin.display(description="times", ordering="count")
    def times(self, obj: SyncAlert) -> str:
        return formats.number(obj.count)

    @admin.display(description="severity", ordering="severity")
    def severity_badge(self, obj: SyncAlert) -> str:
        return badge(obj.get_severity_display(), SEVERITY_TONES.get(obj.severity, "muted"))

    @admin.display(description="state", ordering="acknowledged_at")
    def state(self, obj: SyncAlert) -> str:
        if obj.acknowledged_at is None:
            return badge("open", "bad" if obj.severity == SyncAlert.Severity.CRITICAL else "warn")
        # Plain text that may wrap (a pill of it would not fit the column).
        return format_html(
            '<span class="console-ack">acknowledged by {}</span>',
            obj.acknowledged_by or "a removed user",
        )

    @admin.action(permissions=["operate"], description="Acknowledge selected alerts")
    def acknowledge(self, request: HttpRequest, queryset: QuerySet) -> None:
        open_ids = list(queryset.filter(acknowledged_at__isnull=True).values_list("pk", flat=True))
        for alert_id in open_ids:
            alert = alert_acknowledge(alert_id=alert_id, user=request.user)
            self.audit(
                request,
                "alert.acknowledge",
                target=f"alert {alert_id}",
                details={"alert_type": alert.alert_type, "source": alert.source},
            )
        self.message_user(request, f"{len(open_ids)} alert(s) acknowledged.", messages.SUCCESS)


class SyncConfigForm(forms.ModelForm):
    """The model's field validators, then ``config_validate`` (recipients) on the result."""

    class Meta:
        model = SyncConfig
        fields = roles.CONFIG_FIELDS  # the same field rules as PUT /api/sync/config

    # Django's ModelForm hooks, which django-stubs does not declare.
    def _post_clean(self) -> None:
        super()._post_clean()  # type: ignore[misc]
        try:
            config_validate(self.instance)
        except ValidationError as e:
            self._update_errors(e)  # type: ignore[attr-defined]


@admin.register(SyncConfig)
class SyncConfigAdmin(ConsoleModelAdmin):
    """Operators edit; each save goes through ``config_update`` (version bump, beat entry).

    The engine's row and a source's row hold different settings (``sync.ops.source_settings``): each
    page shows only those that apply to its row, the engine first in the list.
    """

    recipients_masked: Callable[[SyncConfig], str]  # made from pii_fields (admin_base.py)

    form = SyncConfigForm
    operator_can_change = True
    list_display = (
        "name",
        "applies_to",
        "enabled",
        "schedule",
        "batch",
        "version_number",
        "updated",
    )
    list_display_links = ("name",)
    list_filter = ("enabled",)
    search_fields = ("source",)
    pii_fields = roles.CONFIG_PII_FIELDS  # masked and read-only without the PII role
    pii_kinds = {"recipients": "emails"}
    ENGINE_FIELDSETS = (
        (
            None,
            {
                "fields": (
                    "source",
                    "version",
                    "updated_at",
                    "enabled",
                    "interval_seconds",
                    "recipients",
                ),
                "description": "The engine: the checks of the cache's retry queue and the log "
                "retention, for every source at once. Each source's schedule, "
                "batches and alert thresholds are on its own row.",
            },
        ),
        (
            "Cache retry queue alerts",
            {"fields": ("retry_queue_threshold", "oldest_intent_seconds", "dead_intent_threshold")},
        ),
        ("Retention", {"fields": ("retention_days",)}),
    )
    SOURCE_FIELDSETS = (
        (
            None,
            {
                "fields": (
                    "source",
                    "version",
                    "updated_at",
                    "enabled",
                    "interval_seconds",
                    "batch_size",
                    "auto_recovery",
                    "recipients",
                ),
                "description": "One source's sync. The cache's retry-queue thresholds and the "
                "log retention apply to every source: they are on the engine "
                "row.",
            },
        ),
        (
            "Alert thresholds",
            {
                "fields": (
                    "failure_threshold",
                    "gap_threshold",
                    "no_success_hours",
                    "error_rate_threshold",
                    "permanent_failure_threshold",
                    "long_run_minutes",
                    "degradation_ratio",
                )
            },
        ),
    )
    readonly_fields = ("source", "version", "updated_at")

    def __init__(self, model: type[SyncConfig], admin_site: admin.AdminSite) -> None:
        super().__init__(model, admin_site)
        masked = self.recipients_masked

        def recipients(obj: SyncConfig) -> str:
            # Masked for a role without PII; an empty list says where alerts go instead.
            return masked(obj) or "none set: alerts go to SYNC_ALERT_RECIPIENTS"

        # A display function's description, as admin.display sets it.
        recipients.short_description = masked.short_description  # type: ignore[attr-defined]
        self.recipients_masked = recipients

    def get_form(
        self, request: HttpRequest, obj: SyncConfig | None = None, change: bool = False, **kwargs
    ):
        form = super().get_form(request, obj, change=change, **kwargs)
        if "interval_seconds" in form.base_fields:  # what the schedule runs, on this row
            form.base_fields["interval_seconds"].help_text = (
                "Seconds between two ops checks (alerts, health checks)."
                if obj is not None and is_engine(obj.source)
                else "Seconds between two scheduled syncs of this source."
            )
        return form

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        engine_first = Case(When(source=SyncConfig.ENGINE, then=Value(0)), default=Value(1))
        return super().get_queryset(request).order_by(engine_first, "source")

    def get_fieldsets(self, request: HttpRequest, obj: Model | None = None):
        engine = isinstance(obj, SyncConfig) and is_engine(obj.source)
        return self.swap_fieldsets(
            request, self.ENGINE_FIELDSETS if engine else self.SOURCE_FIELDSETS
        )

    @admin.display(description="configuration", ordering="source")
    def name(self, obj: SyncConfig) -> str:
        return obj.source

    @admin.display(description="applies to")
    def applies_to(self, obj: SyncConfig) -> str:
        if is_engine(obj.source):
            return "every source: cache retry queue, retention"
        return "this source: schedule, batches, alerts"

    @admin.display(description="every", ordering="interval_seconds")
    def schedule(self, obj: SyncConfig) -> str:
        return format_html(
            '<span class="console-nowrap">{}</span>', formats.duration(obj.interval_seconds)
        )

    @admin.display(description="batch size", ordering="batch_size")
    def batch(self, obj: SyncConfig) -> str:
        return formats.EMPTY if is_engine(obj.source) else formats.number(obj.batch_size)

    version_number = formatted("version", "version")
    updated = formatted("updated_at", "updated", formats.when)

    def save_model(
        self, request: HttpRequest, obj: SyncConfig, form: forms.ModelForm, change: bool
    ) -> None:
        changes = {name: form.cleaned_data[name] for name in form.changed_data}
        if changes:
            config_update(source=obj.source, **changes)
        # NOTE: recipients are addresses: the audit row names the field, not its value.
        self.audit(
            request,
            "config.update",
            target=obj.source,
            details={
                name: (value if name != "recipients" else "(changed)")
                for name, value in changes.items()
            },
        )


@admin.register(SyncMetric)
class SyncMetricAdmin(ConsoleModelAdmin):
    list_display = (
        "run",
        "source",
        "status_badge",
        "finished_at",
        "duration",
        "rate",
        "rows_total",
        "failed",
    )
    list_filter = ("source", "status", ("finished_at", DateRangeFilter))
    search_fields = ("source",)
    ordering = ("-finished_at",)
    date_hierarchy = "finished_at"
    fields = (
        "run",
        "source",
        "status_badge",
        "finished_at",
        "duration",
        "rate",
        "rows_total",
        "failed",
        "phase_ms",
        "errors_by_category",
    )
    readonly_fields = ("run", "status_badge", "duration", "rate")

    @admin.display(description="run", ordering="run_id")
    def run(self, obj: SyncMetric) -> str:
        return run_link(obj.run_id)

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: SyncMetric) -> str:
        return badge(obj.status, RUN_TONES.get(obj.status, "muted"))

    @admin.display(description="duration", ordering="duration_seconds")
    def duration(self, obj: SyncMetric) -> str:
        return format_html(
            '<span class="console-nowrap">{}</span>', formats.duration(obj.duration_seconds)
        )

    @admin.display(description="throughput", ordering="throughput")
    def rate(self, obj: SyncMetric) -> str:
        return formats.rate(obj.throughput)


@admin.register(SyncHealthMetric)
class SyncHealthMetricAdmin(ConsoleModelAdmin):
    list_display = (
        "source",
        "checked_at",
        "in_sheet",
        "in_database",
        "gaps_badge",
        "errors",
        "success",
        "retries",
        "failed_for_good",
    )
    list_filter = ("source", ("checked_at", DateRangeFilter))
    search_fields = ("source",)
    ordering = ("-checked_at",)
    date_hierarchy = "checked_at"
    fields = list_display
    readonly_fields = (
        "in_sheet",
        "in_database",
        "gaps_badge",
        "errors",
        "success",
        "retries",
        "failed_for_good",
    )

    @admin.display(description="gaps", ordering="gaps")
    def gaps_badge(self, obj: SyncHealthMetric) -> str:
        if obj.gaps is None:
            return formats.EMPTY
        return badge(formats.number(obj.gaps), "ok" if obj.gaps == 0 else "bad")

    in_sheet = formatted("sheet_count", "in sheet")
    in_database = formatted("database_count", "in database")
    retries = formatted("retry_pending", "retries")
    failed_for_good = formatted("retry_permanent", "failed for good")
    errors = formatted("error_rate", "error rate", formats.percent)
    success = formatted("success_rate_24h", "success 24 h", formats.percent)


@admin.register(StaffAction)
class StaffActionAdmin(ConsoleModelAdmin):
    """The audit list: who did what, when, from where. Nobody edits or deletes it."""

    list_display = ("created_at", "who", "action", "target", "details")
    list_filter = ("action", ("created_at", DateRangeFilter), "username")
    search_fields = ("username", "action", "target")
    ordering = ("-created_at",)
    date_hierarchy = "created_at"
    redacted_fields = ("details",)

    @admin.display(description="who", ordering="username")
    def who(self, obj: StaffAction) -> str:
        return format_html('{}<span class="console-sub">{}</span>', obj.username, obj.ip or "")

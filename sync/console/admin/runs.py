"""Sync runs (the audit log) with their record and error logs (seed 002 §2, seed 004 §4).

Searching a buyer or seller number finds every run that touched it (an exact match on the
indexed ``natural_key`` of the record and error logs); a run's page links to its logs and
shows its first errors.
"""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from sync.console.admin.filters import (
    DateRangeFilter,
    RunIdFilter,
    RunSourceFilter,
    RunStatusFilter,
    RunTriggerFilter,
)
from sync.console.admin.run_page import phase_table, render, throughput_text
from sync.console.admin_base import ConsoleModelAdmin, badge
from sync.models import ErrorLog, RecordLog, SyncRun, SyncUpload
from sync.redaction import redact

RUN_TONES = {
    SyncRun.Status.SUCCEEDED: "ok", SyncRun.Status.PARTIAL: "warn",
    SyncRun.Status.FAILED: "bad", SyncRun.Status.RUNNING: "info",
    SyncRun.Status.PENDING: "info", SyncRun.Status.CANCELLED: "muted",
    SyncRun.Status.REFUSED: "muted",
}
ACTION_TONES = {
    RecordLog.Action.CREATED: "ok", RecordLog.Action.UPDATED: "info",
    RecordLog.Action.UNCHANGED: "muted", RecordLog.Action.FAILED: "bad",
    RecordLog.Action.SUPERSEDED: "warn",
}
ERRORS_SHOWN = 20  # on a run's page; the rest are one link away


def run_link(run_id: int) -> str:
    return format_html('<a href="{}">run {}</a>',
                       reverse("admin:sync_syncrun_change", args=[run_id]), run_id)


def _runs_touching(term: str) -> Q:
    """Seed 002 §2: runs whose record or error logs name this buyer/seller number."""
    touched = (Q(pk__in=RecordLog.objects.filter(natural_key=term).values("run_id"))
               | Q(pk__in=ErrorLog.objects.filter(natural_key=term).values("run_id"))
               | Q(source=term))
    if term.isdigit():
        touched |= Q(pk=int(term))
    return touched


class RunLogAdmin(ConsoleModelAdmin):
    """Record and error logs: searched by run id or an exact buyer/seller number."""

    search_help_text = "A buyer or seller number (exact), or a run id."
    date_hierarchy = "created_at"
    ordering = ("-run_id", "row_number")

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str):
        term = search_term.strip()
        if not term:
            return queryset, False
        found = Q(natural_key=term)
        if term.isdigit():
            found |= Q(run_id=int(term))
        return queryset.filter(found), False

    @admin.display(description="run", ordering="run_id")
    def run(self, obj) -> str:
        return run_link(obj.run_id)


@admin.register(SyncRun)
class SyncRunAdmin(ConsoleModelAdmin):
    list_display = ("id", "source", "trigger", "status_badge", "created_at", "duration_text",
                    "progress", "created", "updated", "unchanged", "failed", "gaps")
    list_display_links = ("id", "source")
    list_filter = (("created_at", DateRangeFilter), "status", "source", "trigger", "dry_run")
    search_fields = ("source",)
    search_help_text = ("A buyer or seller number (exact) finds every run that touched it; "
                        "or a source name or run id.")
    date_hierarchy = "created_at"
    ordering = ("-created_at",)
    redacted_fields = ("message",)
    fieldsets = (
        (None, {"fields": ("source", "target", "location", ("trigger", "status_badge"),
                           ("dry_run", "batch_size"), ("phase", "cancel_requested"), "host",
                           "message")}),
        ("Timing", {"fields": (("created_at", "started_at", "finished_at"),
                               ("duration_text", "throughput_text"), "phase_table")}),
        ("Rows", {"fields": (("rows_total", "rows_done"),
                             ("created", "updated", "unchanged", "failed", "gaps"),
                             "errors_table", "logs", "upload")}),
        ("Verification", {"fields": ("verification_table", "schema_table")}),
        ("First errors", {"fields": ("error_table",)}),
    )
    readonly_fields = ("status_badge", "duration_text", "logs", "error_table", "throughput_text",
                       "phase_table", "errors_table", "verification_table", "schema_table",
                       "upload")

    # A run's stored results as tables (sync.console.admin.run_page), never raw JSON.
    @admin.display(description="throughput")
    def throughput_text(self, obj: SyncRun) -> str:
        return throughput_text(obj.throughput)

    @admin.display(description="phase timings")
    def phase_table(self, obj: SyncRun) -> str:
        return phase_table(obj.phase_ms or {})

    @admin.display(description="errors by category")
    def errors_table(self, obj: SyncRun) -> str:
        return render(obj.errors_by_category or {})

    @admin.display(description="verification")
    def verification_table(self, obj: SyncRun) -> str:
        if obj.dry_run:
            return "Not verified: a dry run writes nothing to verify."
        return render(obj.verification or {})

    @admin.display(description="schema report")
    def schema_table(self, obj: SyncRun) -> str:
        return render(obj.schema_report or {})

    @admin.display(description="uploaded file and rejected rows")
    def upload(self, obj: SyncRun) -> str:
        """The console upload the run read (if any), and its rejects file (operators)."""
        found = SyncUpload.objects.filter(run_id=obj.pk).first() or SyncUpload.objects.filter(
            preview_run_id=obj.pk).first()
        parts = []
        if found is not None:
            parts.append(format_html('<a href="{}">upload {}</a> ({}, by {})',
                                     reverse("admin:console_upload", args=[found.pk]),
                                     found.pk, found.filename, found.uploaded_by))
        if obj.failed:
            parts.append(format_html('<a href="{}">rejected rows (CSV)</a> '
                                     '<span class="quiet">(operators)</span>',
                                     reverse("admin:console_run_rejects", args=[obj.pk])))
        return format_html_join(" · ", "{}", ((p,) for p in parts)) if parts else "-"

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str):
        term = search_term.strip()
        if not term:
            return queryset, False
        return queryset.filter(_runs_touching(term)), False

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: SyncRun) -> str:
        return badge(obj.get_status_display(), RUN_TONES.get(obj.status, "muted"))

    @admin.display(description="duration")
    def duration_text(self, obj: SyncRun) -> str:
        seconds = obj.duration
        if seconds is None:
            return "-"
        return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"

    @admin.display(description="rows")
    def progress(self, obj: SyncRun) -> str:
        return f"{obj.rows_done:,} / {obj.rows_total:,}"

    @admin.display(description="logs")
    def logs(self, obj: SyncRun) -> str:
        records = reverse("admin:sync_recordlog_changelist")
        errors = reverse("admin:sync_errorlog_changelist")
        return format_html('<a href="{}?run_id={}">record log of every row</a> · '
                           '<a href="{}?run_id={}">every error</a>',
                           records, obj.pk, errors, obj.pk)

    @admin.display(description="errors")
    def error_table(self, obj: SyncRun) -> str:
        errors = ErrorLog.objects.filter(run_id=obj.pk).order_by("row_number", "id")[
            :ERRORS_SHOWN]
        if not errors:
            return "No errors."
        rows = format_html_join(
            "", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            ((e.row_number or "-", e.natural_key, e.get_category_display(), e.column or "-",
              _length(e), redact(e.reason)) for e in errors))
        return format_html(
            '<table><thead><tr><th>row</th><th>key</th><th>category</th><th>column</th>'
            "<th>length / limit</th><th>reason</th></tr></thead><tbody>{}</tbody></table>",
            rows)


def _length(error: ErrorLog) -> str:
    if error.value_length is None:
        return "-"
    return f"{error.value_length} / {error.column_limit}" if error.column_limit else str(
        error.value_length)


@admin.register(RecordLog)
class RecordLogAdmin(RunLogAdmin):
    list_display = ("run", "row_number", "natural_key", "action_badge", "object_id",
                    "created_at")
    list_display_links = ("row_number",)
    list_filter = (("created_at", DateRangeFilter), "action", RunIdFilter, RunSourceFilter,
                   RunTriggerFilter, RunStatusFilter)
    search_fields = ("natural_key",)

    @admin.display(description="action", ordering="action")
    def action_badge(self, obj: RecordLog) -> str:
        return badge(obj.get_action_display(), ACTION_TONES.get(obj.action, "muted"))


@admin.register(ErrorLog)
class ErrorLogAdmin(RunLogAdmin):
    list_display = ("run", "source", "row_number", "natural_key", "category_badge", "code",
                    "column", "length", "reason", "retryable", "created_at")
    list_display_links = ("row_number",)
    list_filter = (("created_at", DateRangeFilter), "category", "source",
                   "retryable", RunIdFilter, RunTriggerFilter, RunStatusFilter)
    search_fields = ("natural_key",)
    redacted_fields = ("reason",)

    @admin.display(description="category", ordering="category")
    def category_badge(self, obj: ErrorLog) -> str:
        tone = "warn" if obj.category in ErrorLog.RETRYABLE else "bad"
        return badge(obj.get_category_display(), tone)

    @admin.display(description="length / limit")
    def length(self, obj: ErrorLog) -> str:
        return _length(obj)

"""Sync runs (the audit log) with their record and error logs.

Searching a buyer or seller number finds every run that touched it (an exact match on the
indexed ``natural_key`` of the record and error logs); a run's page links to its logs and
shows its first errors.
"""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import admin
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from sync.console import formats
from sync.console.admin.filters import (
    DateRangeFilter,
    RunIdFilter,
    RunSourceFilter,
    RunStatusFilter,
    RunTriggerFilter,
)
from sync.console.admin.run_page import (
    left_sheet_text,
    phase_table,
    render,
    throughput_text,
)
from sync.console.admin_base import ConsoleModelAdmin, badge
from sync.models import ErrorLog, RecordLog, SyncRun, SyncUpload
from sync.redaction import redact

RUN_TONES: dict[str, str] = {
    SyncRun.Status.SUCCEEDED: "ok",
    SyncRun.Status.PARTIAL: "warn",
    SyncRun.Status.FAILED: "bad",
    SyncRun.Status.RUNNING: "info",
    SyncRun.Status.PENDING: "info",
    SyncRun.Status.CANCELLED: "muted",
    SyncRun.Status.REFUSED: "muted",
}
ACTION_TONES: dict[str, str] = {
    RecordLog.Action.CREATED: "ok",
    RecordLog.Action.UPDATED: "info",
    RecordLog.Action.UNCHANGED: "muted",
    RecordLog.Action.FAILED: "bad",
    RecordLog.Action.SUPERSEDED: "warn",
}
ERRORS_SHOWN = 20  # on a run's page; the rest are one link away
# The schema report's measurements of values against length-limited columns.
MEASURED = ("rows_scanned", "rows_with_misfits", "misfits", "by_column", "rows")


def run_link(run_id: int) -> str:
    return format_html(
        '<a href="{}">run {}</a>', reverse("admin:sync_syncrun_change", args=[run_id]), run_id
    )


def _runs_touching(term: str) -> Q:
    """Runs whose record or error logs name this buyer/seller number."""
    touched = (
        Q(pk__in=RecordLog.objects.filter(natural_key=term).values("run_id"))
        | Q(pk__in=ErrorLog.objects.filter(natural_key=term).values("run_id"))
        | Q(source=term)
    )
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
    message_redacted: Callable[[SyncRun], str]  # made from redacted_fields (admin_base.py)

    # NOTE: seven columns that fit 1280 px beside the admin's two sidebars: the row counts
    # and the gaps are one "outcome" cell (only the non-zero ones), numbers and times never
    # wrap, and the trigger is a filter (and on the run's page), not a column.
    list_display = (
        "run_number",
        "source",
        "status_badge",
        "created_text",
        "duration_text",
        "progress",
        "outcome",
    )
    list_display_links = ("run_number", "source")
    list_filter = (("created_at", DateRangeFilter), "status", "source", "trigger", "dry_run")
    search_fields = ("source",)
    search_help_text = (
        "A buyer or seller number (exact) finds every run that touched it; "
        "or a source name or run id."
    )
    date_hierarchy = "created_at"
    ordering = ("-created_at",)
    redacted_fields = ("message",)
    # NOTE: "run-grid" lays a fieldset's rows out in two aligned columns (console.css): one
    # field per row here, never Django's multi-field rows, whose second label floats right.
    fieldsets = (
        (
            None,
            {
                "classes": ("run-grid",),
                "fields": (
                    "source",
                    "target",
                    "trigger",
                    "state",
                    "dry_run",
                    "batch_size",
                    "host",
                    "request_id",
                    "location",
                    "message_text",
                ),
            },
        ),
        (
            "Timing",
            {
                "classes": ("run-grid",),
                "fields": (
                    "created_at",
                    "started_at",
                    "finished_at",
                    "duration_text",
                    "throughput_text",
                    "phase_table",
                ),
            },
        ),
        (
            "Rows",
            {
                "classes": ("run-grid",),
                "fields": ("progress", "counts", "left_sheet", "errors_table", "logs", "upload"),
            },
        ),
        ("Verification", {"fields": ("verification_report", "schema_table")}),
        ("First errors", {"fields": ("error_table",)}),
    )
    readonly_fields = (
        "state",
        "status_badge",
        "duration_text",
        "logs",
        "error_table",
        "throughput_text",
        "phase_table",
        "errors_table",
        "verification_report",
        "schema_table",
        "upload",
        "progress",
        "counts",
        "message_text",
        "left_sheet",
    )

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
    def verification_report(self, obj: SyncRun) -> str:
        if obj.dry_run:
            return "Not verified: a dry run writes nothing to verify."
        return render(obj.verification or {})

    @admin.display(description="left the sheet")
    def left_sheet(self, obj: SyncRun) -> str:
        """Rows in the database the sheet no longer has (count, keys, what was done)."""
        return left_sheet_text(obj.verification or {})

    @admin.display(description="schema report")
    def schema_table(self, obj: SyncRun) -> str:
        report = dict(obj.schema_report or {})
        if "limited_columns" in report and not report["limited_columns"]:
            # Nothing is measured without a length-limited column: its zeros say nothing.
            for key in MEASURED:
                report.pop(key, None)
        return render(report)

    @admin.display(description="uploaded file and rejected rows")
    def upload(self, obj: SyncRun) -> str:
        """The console upload the run read (if any), and its rejects file (operators)."""
        found = (
            SyncUpload.objects.filter(run_id=obj.pk).first()
            or SyncUpload.objects.filter(preview_run_id=obj.pk).first()
        )
        parts = []
        if found is not None:
            parts.append(
                format_html(
                    '<a href="{}">upload {}</a> ({}, by {})',
                    reverse("admin:console_upload", args=[found.pk]),
                    found.pk,
                    found.filename,
                    found.uploaded_by,
                )
            )
        if obj.failed:
            parts.append(
                format_html(
                    '<a href="{}">rejected rows (CSV)</a> <span class="quiet">(operators)</span>',
                    reverse("admin:console_run_rejects", args=[obj.pk]),
                )
            )
        return format_html_join(" · ", "{}", ((p,) for p in parts)) if parts else "-"

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str):
        term = search_term.strip()
        if not term:
            return queryset, False
        return queryset.filter(_runs_touching(term)), False

    @admin.display(description="id", ordering="id")
    def run_number(self, obj: SyncRun) -> str:
        """An id, like a row number, keeps its digits bare (``run 1234`` everywhere)."""
        return str(obj.pk)

    @admin.display(description="message")
    def message_text(self, obj: SyncRun) -> str:
        """The run's message (redacted again, as every console page shows it) with its counts
        grouped like every other number on the page."""
        return formats.counts_in_text(self.message_redacted(obj))

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: SyncRun) -> str:
        return badge(obj.get_status_display(), RUN_TONES.get(obj.status, "muted"))

    @admin.display(description="status")
    def state(self, obj: SyncRun) -> str:
        """The status pill, then (beside it, not in a field of its own) what an active run is
        doing and whether a cancel was asked for."""
        notes = []
        if obj.status in SyncRun.ACTIVE and obj.phase:
            notes.append(f"phase {obj.phase}")
        if obj.cancel_requested:
            notes.append(
                "cancel requested" if obj.status in SyncRun.ACTIVE else "cancel was requested"
            )
        return format_html(
            '{} <span class="quiet">{}</span>', self.status_badge(obj), " · ".join(notes)
        )

    @admin.display(description="created", ordering="created_at")
    def created_text(self, obj: SyncRun) -> str:
        return format_html('<span class="nowrap">{}</span>', formats.when(obj.created_at))

    @admin.display(description="duration")
    def duration_text(self, obj: SyncRun) -> str:
        return format_html('<span class="nowrap">{}</span>', formats.duration(obj.duration))

    @admin.display(description="rows", ordering="rows_total")
    def progress(self, obj: SyncRun) -> str:
        """``4,140`` when every row was read, else ``2,000 of 4,140``."""
        if obj.rows_done == obj.rows_total:
            text = formats.number(obj.rows_total)
        else:
            text = f"{formats.number(obj.rows_done)} of {formats.number(obj.rows_total)}"
        return format_html('<span class="nowrap">{}</span>', text)

    @admin.display(description="outcome")
    def outcome(self, obj: SyncRun) -> str:
        """The non-zero counts: ``4,135 new · 5 failed · 5 gaps`` (the last two in red)."""
        parts = [
            format_html('<span class="nowrap">{} {}</span>', formats.number(n), name)
            for n, name in (
                (obj.created, "new"),
                (obj.updated, "updated"),
                (obj.unchanged, "unchanged"),
            )
            if n
        ]
        for n, name in ((obj.failed, "failed"), (obj.gaps, "gaps" if obj.gaps != 1 else "gap")):
            if n:
                parts.append(
                    format_html(
                        '<span class="nowrap console-bad">{} {}</span>', formats.number(n), name
                    )
                )
        if not parts:
            parts.append(format_html('<span class="quiet">{}</span>', "no rows"))
        if obj.dry_run:  # an upload's preview: nothing was written
            parts.insert(
                0, format_html('<span class="console-badge tone-info">{}</span>', "dry run")
            )
        return format_html_join(" · ", "{}", ((p,) for p in parts))

    @admin.display(description="counts")
    def counts(self, obj: SyncRun) -> str:
        tiles = [
            ("created", obj.created, False),
            ("updated", obj.updated, False),
            ("unchanged", obj.unchanged, False),
            ("failed", obj.failed, bool(obj.failed)),
            ("gaps", obj.gaps, bool(obj.gaps)),
        ]
        body = format_html_join(
            "",
            '<div class="{}"><dt>{}</dt><dd>{}</dd></div>',
            (("failed" if bad else "", name, formats.number(value)) for name, value, bad in tiles),
        )
        return format_html('<dl class="counts run-counts">{}</dl>', body)

    @admin.display(description="logs")
    def logs(self, obj: SyncRun) -> str:
        records = reverse("admin:sync_recordlog_changelist")
        errors = reverse("admin:sync_errorlog_changelist")
        return format_html(
            '<a href="{}?run_id={}">record log of every row</a> · '
            '<a href="{}?run_id={}">every error</a>',
            records,
            obj.pk,
            errors,
            obj.pk,
        )

    @admin.display(description="errors")
    def error_table(self, obj: SyncRun) -> str:
        errors = list(
            ErrorLog.objects.filter(run_id=obj.pk).order_by("row_number", "id")[:ERRORS_SHOWN]
        )
        if not errors:
            return "No errors."
        # The length / limit column only when some error is a value too long for its column.
        limits = any(e.column_limit for e in errors)
        rows = format_html_join(
            "",
            "<tr>{}</tr>",
            (
                (
                    format_html_join(
                        "",
                        "<td>{}</td>",
                        (
                            (cell,)
                            for cell in (
                                formats.position(e.row_number),
                                format_html('<span class="nowrap">{}</span>', e.natural_key),
                                e.get_category_display(),
                                e.column or formats.EMPTY,
                                *((_length(e),) if limits else ()),
                                redact(e.reason),
                            )
                        ),
                    ),
                )
                for e in errors
            ),
        )
        head = format_html_join(
            "",
            "<th>{}</th>",
            (
                (h,)
                for h in (
                    "row",
                    "key",
                    "category",
                    "column",
                    *(("length / limit",) if limits else ()),
                    "reason",
                )
            ),
        )
        return format_html(
            '<table class="run-facts run-errors"><thead><tr>{}</tr></thead>'
            "<tbody>{}</tbody></table>",
            head,
            rows,
        )


def _length(error: ErrorLog) -> str:
    """``61 / 50`` for a value too long for its column; nothing for other errors (a bad
    date's length says nothing)."""
    if error.value_length is None or not error.column_limit:
        return formats.EMPTY
    return f"{formats.number(error.value_length)} / {formats.number(error.column_limit)}"


class RowNumberMixin:
    @admin.display(description="row", ordering="row_number")
    def row(self, obj) -> str:
        """A row number is a position in the sheet: no separator (``row 1350``)."""
        return formats.position(obj.row_number)


@admin.register(RecordLog)
class RecordLogAdmin(RowNumberMixin, RunLogAdmin):
    list_display = ("run", "row", "natural_key", "action_badge", "object_id", "created_at")
    list_display_links = ("row",)
    list_filter = (
        ("created_at", DateRangeFilter),
        "action",
        RunIdFilter,
        RunSourceFilter,
        RunTriggerFilter,
        RunStatusFilter,
    )
    search_fields = ("natural_key",)

    @admin.display(description="action", ordering="action")
    def action_badge(self, obj: RecordLog) -> str:
        return badge(obj.get_action_display(), ACTION_TONES.get(obj.action, "muted"))


@admin.register(ErrorLog)
class ErrorLogAdmin(RowNumberMixin, RunLogAdmin):
    # NOTE: fits 1280 px beside both sidebars: the source and "retryable" are filters (and
    # the run link names the run), the code is the category badge's tooltip, a value's
    # length / limit goes with its column; the reason is one line, cut, whole on hover
    # (admin_base's <name>_brief).
    list_display = (
        "run",
        "row",
        "natural_key",
        "category_badge",
        "column_text",
        "reason",
        "created_at",
    )
    list_display_links = ("row",)
    list_filter = (
        ("created_at", DateRangeFilter),
        "category",
        "source",
        "retryable",
        RunIdFilter,
        RunTriggerFilter,
        RunStatusFilter,
    )
    search_fields = ("natural_key",)
    redacted_fields = ("reason",)

    @admin.display(description="category", ordering="category")
    def category_badge(self, obj: ErrorLog) -> str:
        tone = "warn" if obj.category in ErrorLog.RETRYABLE else "bad"
        return format_html(
            '<span title="{}">{}</span>', obj.code or "", badge(obj.get_category_display(), tone)
        )

    @admin.display(description="column", ordering="column")
    def column_text(self, obj: ErrorLog) -> str:
        """The column, and under it for a value too long for it its length / limit
        (``61 / 50``, as on the run's page)."""
        if not obj.column_limit or obj.value_length is None:
            return obj.column or formats.EMPTY
        return format_html(
            '{} <span class="console-sub" title="length / limit">{}</span>',
            obj.column or formats.EMPTY,
            _length(obj),
        )

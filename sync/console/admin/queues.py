"""The two retry queues: cache intents (``sync_retry_queue``, DESIGN I3) and sheet rows
(``retry_queue``). Operators retry selected rows now or discard them after a confirmation."""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils.html import format_html

from sync.cache.rows import discard_intents, retry_intents
from sync.console import formats, row_actions
from sync.console.admin.filters import DateRangeFilter
from sync.console.admin.runs import run_link
from sync.console.admin_base import ConsoleModelAdmin, badge, brief, readable
from sync.ingest.exceptions import SyncAlreadyRunningError
from sync.models import RecordRetry, SyncIntent
from sync.redaction import redact


def confirm_discard(
    model_admin: ConsoleModelAdmin,
    request: HttpRequest,
    queryset: QuerySet,
    *,
    action: str,
    consequence: str,
) -> TemplateResponse:
    """The "are you sure?" page; its form posts the same action back with ``post=yes``."""
    opts = model_admin.model._meta
    context = {
        **model_admin.admin_site.each_context(request),
        "title": f"Discard {queryset.count()} {opts.verbose_name_plural}?",
        "subtitle": None,
        "opts": opts,
        "objects": queryset[:200],
        "count": queryset.count(),
        "action": action,
        "consequence": consequence,
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "selected": [str(pk) for pk in queryset.values_list("pk", flat=True)],
        "media": model_admin.media,
    }
    request.current_app = model_admin.admin_site.name
    return TemplateResponse(request, "admin/sync/confirm_discard.html", context)


@admin.register(SyncIntent)
class SyncIntentAdmin(ConsoleModelAdmin):
    # NOTE: six columns fit 1280 px beside both sidebars: the model, key and operation are
    # one cell, the fence a pill beside the status, the error cut (whole text on hover).
    list_display = ("intent", "status_badge", "attempts", "next_attempt_at", "last_error")
    list_display_links = ("intent",)
    list_filter = ("status", "model", "op", ("created_at", DateRangeFilter))
    search_fields = ("=object_pk",)
    search_help_text = "A primary key (exact)."
    ordering = ("next_attempt_at",)
    redacted_fields = ("last_error",)
    actions = ("retry_now", "discard")

    @admin.display(description="intent", ordering="model")
    def intent(self, obj: SyncIntent) -> str:
        return format_html(
            '{} {}<span class="console-sub">{}</span>',
            obj.model,
            obj.object_pk,
            obj.get_op_display(),
        )

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: SyncIntent) -> str:
        if obj.status == SyncIntent.Status.DEAD:
            state = badge("dead", "bad")
        else:
            state = badge("retrying", "warn") if obj.attempts else badge("pending", "info")
        if obj.epoch is None:
            return state
        # This intent failed during an outage and keeps its model's reads off Redis.
        return format_html(
            '{} <span title="{}">{}</span>',
            state,
            "failed during an outage: its model's reads skip Redis until it is written",
            badge("fence", "warn"),
        )

    @admin.action(permissions=["operate"], description="Retry selected intents now")
    def retry_now(self, request: HttpRequest, queryset: QuerySet) -> None:
        ids = list(queryset.values_list("pk", flat=True))
        result = retry_intents(ids=ids)
        self.audit(
            request,
            "cache.intents.retry",
            target=f"{len(ids)} intent(s)",
            details={"ids": ids[:100], "written": result.written, "failed": result.failed},
        )
        level = messages.SUCCESS if not result.failed else messages.WARNING
        self.message_user(request, str(result), level)

    @admin.action(permissions=["operate"], description="Discard selected intents…")
    def discard(self, request: HttpRequest, queryset: QuerySet) -> TemplateResponse | None:
        if request.POST.get("post") != "yes":
            return confirm_discard(
                self,
                request,
                queryset,
                action="discard",
                consequence="The cache keeps whatever it holds for these keys until their "
                "rows change again; verification reports any that are stale.",
            )
        ids = list(queryset.values_list("pk", flat=True))
        deleted = discard_intents(ids=ids)
        self.audit(
            request,
            "cache.intents.discard",
            target=f"{deleted} intent(s)",
            details={"ids": ids[:100]},
        )
        self.message_user(request, f"{deleted} intent(s) discarded.", messages.SUCCESS)
        return None


@admin.register(RecordRetry)
class RecordRetryAdmin(ConsoleModelAdmin):
    # NOTE: fits 1280 px beside both sidebars: the source under the key, the category pill
    # before the cut error text (whole text on hover).
    list_display = ("record", "status_badge", "attempts", "next_retry_at", "last_run", "problem")
    list_display_links = ("record",)
    list_filter = ("status", "source", "category", ("created_at", DateRangeFilter))
    search_fields = ("=natural_key",)
    search_help_text = "A buyer or seller number (exact)."
    ordering = ("next_retry_at",)
    redacted_fields = ("last_error",)
    actions = ("retry_now", "discard")

    @admin.display(description="record", ordering="natural_key")
    def record(self, obj: RecordRetry) -> str:
        row = (
            f"{obj.source}, row {formats.number(obj.row_number)}"
            if obj.row_number
            else (obj.source)
        )
        return format_html('{}<span class="console-sub">{}</span>', obj.natural_key, row)

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: RecordRetry) -> str:
        if obj.status == RecordRetry.Status.PERMANENTLY_FAILED:
            return badge("permanently failed", "bad")
        return badge("pending", "warn")

    @admin.display(description="problem", ordering="category")
    def problem(self, obj: RecordRetry) -> str:
        # NOTE: redacted for every role: a stored error is redacted already, this is a second
        # net (the detail page shows it whole, redacted for roles without PII).
        return format_html(
            "{} {}",
            badge(obj.get_category_display(), "muted"),
            brief(redact(readable(obj.last_error)), 70),
        )

    @admin.display(description="last run", ordering="last_run_id")
    def last_run(self, obj: RecordRetry) -> str:
        return run_link(obj.last_run_id) if obj.last_run_id else formats.EMPTY

    @admin.action(
        permissions=["operate"], description="Retry selected rows now (re-read from the sheet)"
    )
    def retry_now(self, request: HttpRequest, queryset: QuerySet) -> None:
        ids = list(queryset.values_list("pk", flat=True))
        try:
            runs = row_actions.records_retry(ids=ids)
        except SyncAlreadyRunningError as e:
            self.audit(
                request,
                "ingest.records.retry",
                target=f"{len(ids)} row(s)",
                details={"ids": ids[:100], "refused": True},
            )
            self.message_user(request, str(e), messages.ERROR)
            return
        self.audit(
            request,
            "ingest.records.retry",
            target=f"{len(ids)} row(s)",
            details={"ids": ids[:100], "runs": [run.pk for run in runs]},
        )
        for run in runs:
            self.message_user(
                request,
                f"Run {run.pk} ({run.source}): {run.status}; {run.created} created, "
                f"{run.updated} updated, {run.unchanged} unchanged, {run.failed} failed.",
                messages.SUCCESS if run.status == "succeeded" else messages.WARNING,
            )

    @admin.action(permissions=["operate"], description="Discard selected rows…")
    def discard(self, request: HttpRequest, queryset: QuerySet) -> TemplateResponse | None:
        if request.POST.get("post") != "yes":
            return confirm_discard(
                self,
                request,
                queryset,
                action="discard",
                consequence="These sheet rows will not be retried; the next full sync of "
                "their source, or sync_missing, picks them up again.",
            )
        ids = list(queryset.values_list("pk", flat=True))
        deleted = row_actions.records_discard(ids=ids)
        self.audit(
            request,
            "ingest.records.discard",
            target=f"{deleted} row(s)",
            details={"ids": ids[:100]},
        )
        self.message_user(
            request, f"{deleted} row(s) discarded from the retry queue.", messages.SUCCESS
        )
        return None

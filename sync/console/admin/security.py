"""The security log's page: logins, failures, lock-outs, ended sessions, permission denials and
changes to users' passwords, flags and roles. Viewers read it; nobody edits it."""

from __future__ import annotations

from django.contrib import admin
from django.utils.html import format_html

from sync.console import formats
from sync.console.admin.filters import DateRangeFilter
from sync.console.admin_base import ConsoleModelAdmin, badge, brief
from sync.models import SecurityEvent

Kind = SecurityEvent.Kind
KIND_TONES: dict[str, str] = {
    Kind.LOGIN: "ok",
    Kind.LOGOUT: "muted",
    Kind.LOGIN_FAILED: "warn",
    Kind.LOCKOUT: "bad",
    Kind.SESSION_EXPIRED: "muted",
    Kind.DENIED: "warn",
    Kind.PASSWORD_CHANGED: "info",
    Kind.DEACTIVATED: "bad",
    Kind.ACTIVATED: "info",
    Kind.STAFF_GRANTED: "info",
    Kind.STAFF_REVOKED: "bad",
    Kind.ROLE_ADDED: "info",
    Kind.ROLE_REMOVED: "info",
}


@admin.register(SecurityEvent)
class SecurityEventAdmin(ConsoleModelAdmin):
    # NOTE: fits 1280 px beside both sidebars: who (and by whom, from where) is one cell, the
    # request (answer and path) another; the request id is on the event's page and searchable.
    list_display = ("created_at", "kind_badge", "who", "request", "details")
    list_filter = ("kind", ("created_at", DateRangeFilter))
    search_fields = ("username", "actor", "request_id")
    ordering = ("-created_at",)
    date_hierarchy = "created_at"
    redacted_fields = ("details",)
    # One field a row: labels and values line up.
    fields = (
        "created_at",
        "kind",
        "user",
        "username",
        "actor",
        "ip",
        "request_id",
        "path",
        "status_code",
        "details",
    )

    @admin.display(description="who", ordering="username")
    def who(self, obj: SecurityEvent) -> str:
        by = f"by {obj.actor}" if obj.actor and obj.actor != obj.username else ""
        where = " · ".join(part for part in (by, obj.ip or "") if part)
        return format_html(
            '{}<span class="console-sub">{}</span>', obj.username or formats.EMPTY, where
        )

    @admin.display(description="request", ordering="path")
    def request(self, obj: SecurityEvent) -> str:
        if not obj.path and obj.status_code is None:
            return formats.EMPTY
        return format_html(
            '{}<span class="console-sub">{}</span>',
            brief(obj.path, 48),
            f"answered {obj.status_code}" if obj.status_code else "",
        )

    @admin.display(description="event", ordering="kind")
    def kind_badge(self, obj: SecurityEvent) -> str:
        return badge(obj.get_kind_display(), KIND_TONES.get(obj.kind, "muted"))

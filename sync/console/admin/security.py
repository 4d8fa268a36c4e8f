"""The security log's page: logins, failures, lock-outs, ended sessions, permission denials and
changes to users' passwords, flags and roles (issue 16). Viewers read it; nobody edits it."""

from __future__ import annotations

from django.contrib import admin

from sync.console.admin.filters import DateRangeFilter
from sync.console.admin_base import ConsoleModelAdmin, badge
from sync.models import SecurityEvent

Kind = SecurityEvent.Kind
KIND_TONES = {
    Kind.LOGIN: "ok", Kind.LOGOUT: "muted", Kind.LOGIN_FAILED: "warn", Kind.LOCKOUT: "bad",
    Kind.SESSION_EXPIRED: "muted", Kind.DENIED: "warn", Kind.PASSWORD_CHANGED: "info",
    Kind.DEACTIVATED: "bad", Kind.ACTIVATED: "info", Kind.STAFF_GRANTED: "info",
    Kind.STAFF_REVOKED: "bad", Kind.ROLE_ADDED: "info", Kind.ROLE_REMOVED: "info",
}


@admin.register(SecurityEvent)
class SecurityEventAdmin(ConsoleModelAdmin):
    list_display = ("created_at", "kind_badge", "username", "actor", "ip", "status_code",
                    "path", "request_id", "details")
    list_filter = ("kind", ("created_at", DateRangeFilter))
    search_fields = ("username", "actor", "request_id")
    ordering = ("-created_at",)
    date_hierarchy = "created_at"
    redacted_fields = ("details",)
    fields = (("created_at", "kind"), ("user", "username", "actor"), ("ip", "request_id"),
              ("path", "status_code"), "details")

    @admin.display(description="event", ordering="kind")
    def kind_badge(self, obj: SecurityEvent) -> str:
        return badge(obj.get_kind_display(), KIND_TONES.get(obj.kind, "muted"))

"""The admin site of the console: its index is the dashboard, and it serves the manual sync
pages (``get_urls`` + ``admin_view``, so they share the admin's login and staff check)."""

from __future__ import annotations

from functools import wraps

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, URLResolver, path

from sync.access import roles
from sync.console import events_panel, slow_requests, upload, views
from sync.console.admin_base import GuardedLookupsMixin, bad_request
from sync.console.lookups import nul_in_request


class ConsoleAdminSite(admin.AdminSite):
    site_header = "syncops operations console"
    site_title = "syncops console"
    index_title = "Dashboard"
    index_template = "admin/console/index.html"

    def get_urls(self) -> list[URLPattern | URLResolver]:
        view = self.admin_view
        return [
            path("console/sync/<str:source>/", view(views.sync_page), name="console_sync"),
            path(
                "console/sync/<str:source>/start/",
                view(views.sync_start),
                name="console_sync_start",
            ),
            path(
                "console/runs/<int:run_id>/cancel/",
                view(views.run_cancel),
                name="console_run_cancel",
            ),
            path(
                "console/sync/<str:source>/upload/",
                upload.capped(view(upload.upload_sheet)),
                name="console_sync_upload",
            ),
            path(
                "console/uploads/<int:upload_id>/", view(upload.upload_page), name="console_upload"
            ),
            path(
                "console/uploads/<int:upload_id>/confirm/",
                view(upload.upload_confirm),
                name="console_upload_confirm",
            ),
            path(
                "console/uploads/<int:upload_id>/preview/",
                view(upload.upload_repreview),
                name="console_upload_repreview",
            ),
            path(
                "console/uploads/<int:upload_id>/file",
                view(upload.upload_download),
                name="console_upload_file",
            ),
            path(
                "console/runs/<int:run_id>/rejects.csv",
                view(upload.run_rejects),
                name="console_run_rejects",
            ),
            path(
                "console/alerts/<int:alert_id>/acknowledge/",
                view(views.alert_acknowledge),
                name="console_alert_acknowledge",
            ),
            path("console/events/", view(events_panel.events_page), name="console_events"),
            path("console/slow/", view(slow_requests.slow_page), name="console_slow"),
            *super().get_urls(),
        ]

    def register(self, model_or_iterable, admin_class=None, **options) -> None:
        """Other apps' admin classes (users, groups, beat schedules, axes logs) get the
        console's lookup guard too: declared filters only, no PII probing (DESIGN I11)."""
        admin_class = admin_class or admin.ModelAdmin
        if not issubclass(admin_class, GuardedLookupsMixin):
            admin_class = type(
                admin_class.__name__,
                (GuardedLookupsMixin, admin_class),
                {"__module__": admin_class.__module__},
            )
        super().register(model_or_iterable, admin_class, **options)

    def admin_view(self, view, cacheable: bool = False):
        """Every admin page (the console's and Django's own): a NUL byte anywhere in the URL
        or the form is a 400 before any view runs (PostgreSQL refuses it in a query: a 500)."""
        guarded = super().admin_view(view, cacheable)

        @wraps(view)
        def inner(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            reason = nul_in_request(request)
            if reason:
                return bad_request(request, self, reason)
            return guarded(request, *args, **kwargs)

        return inner

    def index(self, request: HttpRequest, extra_context: dict | None = None) -> TemplateResponse:
        """The dashboard above the app list, for people holding a console role."""
        context = dict(extra_context or {})
        if roles.can_view(request.user):
            context.update(views.dashboard_context(request))
        return super().index(request, extra_context=context)

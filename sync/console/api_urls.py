"""``/api/sync/``: the console's JSON API (``sync.console.api``)."""

from django.urls import path

from sync.console import api

app_name = "sync_api"

urlpatterns = [
    path("manual", api.manual, name="manual"),
    path("status", api.status, name="status"),
    path("progress/<int:run_id>", api.progress, name="progress"),
    path("cancel/<int:run_id>", api.cancel, name="cancel"),
    path("config", api.config, name="config"),
    path("dashboard", api.dashboard, name="dashboard"),
    path("alerts/<int:alert_id>/acknowledge", api.alert_acknowledge, name="alert_acknowledge"),
]

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from catalog.api import api as catalog_api
from config.health import health_view, metrics_view

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/", admin.site.urls),
    path("api/sync/", include("sync.console.api_urls")),
    path("health/", health_view, name="health"),
    path("metrics", metrics_view, name="metrics"),
    path("api/", catalog_api.urls),  # the parts catalog API, OpenAPI at /api/openapi.json
]

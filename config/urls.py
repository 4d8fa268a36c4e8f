from django.contrib import admin
from django.urls import path
from django.views.generic import RedirectView

from config.health import health_view, metrics_view

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/", admin.site.urls),
    path("health/", health_view, name="health"),
    path("metrics", metrics_view, name="metrics"),
]

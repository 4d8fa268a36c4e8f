from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.urls import include, path
from django.views.decorators.http import require_safe
from django.views.generic import RedirectView

from catalog.api import api as catalog_api
from config.env import ROOT
from config.health import health_view, metrics_view
from sync.console.api import api as console_api

# The console's icon (static/favicon.svg; admin pages link it): browsers that ask for
# /favicon.ico on their own get it too, instead of a 404 on every page.
FAVICON = (ROOT / "static" / "favicon.svg").read_bytes()


@require_safe
def favicon_view(request: HttpRequest) -> HttpResponse:
    response = HttpResponse(FAVICON, content_type="image/svg+xml")
    response["Cache-Control"] = "public, max-age=86400"
    return response


urlpatterns = [
    # Customers land on the storefront; staff go to /admin/.
    path("", RedirectView.as_view(url="/parts/", permanent=False)),
    path("", include("catalog.urls")),  # the storefront: /parts/, /parts/<id>/
    path("favicon.ico", favicon_view, name="favicon"),
    path("admin/", admin.site.urls),
    path("api/sync/", console_api.urls),  # the console's API, OpenAPI at /api/sync/openapi.json
    path("health/", health_view, name="health"),
    path("metrics", metrics_view, name="metrics"),
    path("api/", catalog_api.urls),  # the parts catalog API, OpenAPI at /api/openapi.json
]

"""ASGI entry point: ``uvicorn config.asgi:application``.

Serves everything, and is what ``GET /api/events`` (Server-Sent Events, long-lived) needs: one
process holds many idle clients on its event loop. With ``DEBUG`` (development and the demo)
static files are served too, as ``runserver`` does; production serves them elsewhere.
"""

import os

import django
from django.conf import settings
from django.core.asgi import get_asgi_application

from config.tracing import configure_tracing

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# NOTE: tracing (off unless TRACING_OTLP_ENDPOINT is set) before the handler is built: it
# adds its middleware to the settings the handler reads.
django.setup(set_prefix=False)
configure_tracing()
application = get_asgi_application()

# The web process watches the workers (sync/ops/watchdog.py): it is what stays alive when
# every worker is dead.
from sync.ops.watchdog import start_web_watchdog  # noqa: E402

start_web_watchdog()

if settings.DEBUG:
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

    application = ASGIStaticFilesHandler(application)

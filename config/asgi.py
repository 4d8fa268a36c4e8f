"""ASGI entry point: ``uvicorn config.asgi:application``.

Serves everything, and is what ``GET /api/events`` (Server-Sent Events, long-lived) needs: one
process holds many idle clients on its event loop. With ``DEBUG`` (development and the demo)
static files are served too, as ``runserver`` does; production serves them elsewhere.
"""

import os

from django.conf import settings
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_asgi_application()

# The web process watches the workers (sync/ops/watchdog.py): it is what stays alive when
# every worker is dead.
from sync.ops.watchdog import start_web_watchdog  # noqa: E402

start_web_watchdog()

if settings.DEBUG:
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

    application = ASGIStaticFilesHandler(application)

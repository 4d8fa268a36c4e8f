import os

import django
from django.core.wsgi import get_wsgi_application

from config.tracing import configure_tracing

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# NOTE: tracing (off unless TRACING_OTLP_ENDPOINT is set) before the handler is built: it
# adds its middleware to the settings the handler reads.
django.setup(set_prefix=False)
configure_tracing()
application = get_wsgi_application()

# The web process watches the workers (sync/ops/watchdog.py): it is what stays alive when
# every worker is dead.
from sync.ops.watchdog import start_web_watchdog  # noqa: E402

start_web_watchdog()

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()

# The web process watches the workers (sync/ops/watchdog.py): it is what stays alive when
# every worker is dead.
from sync.ops.watchdog import start_web_watchdog  # noqa: E402

start_web_watchdog()

"""``./dev manage …``: Django's command line on the development profile's embedded servers.

For each of ``DATABASE_URL`` / ``REDIS_URL`` / ``CELERY_BROKER_URL`` that is unset (in the
environment and in the ``.env`` file) it starts, or reuses, the embedded server of the profile
(``SYNCOPS_SERVICES_PROFILE``, default ``dev``) and exports its URL, then runs the command as
``manage.py`` would. With every URL set, or ``DJANGO_ENV=production``, it starts nothing.
"""

from __future__ import annotations

import os
import sys

from devtools.devservices import export_service_urls


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    export_service_urls()
    from django.core.management import execute_from_command_line

    execute_from_command_line(["manage.py", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    main()

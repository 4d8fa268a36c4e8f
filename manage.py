#!/usr/bin/env python
"""Django's command-line utility for administrative tasks.

It starts no server: without ``DATABASE_URL`` / ``REDIS_URL`` / ``CELERY_BROKER_URL`` the
settings stop it with a message saying so. ``./dev manage <command>`` starts the embedded
development servers for the unset ones first (``devtools/manage.py``).
"""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()

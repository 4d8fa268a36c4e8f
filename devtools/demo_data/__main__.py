"""``python -m devtools.demo_data [--count N]``: prepare the demo's superuser and data.

Like ``./dev manage`` it starts (or reuses) the embedded server of each unset service URL
before Django reads the settings; ``./dev demo`` runs it with every URL already set.
"""

from __future__ import annotations

import argparse
import os
import sys

from devtools.devservices import export_service_urls


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.demo_data",
        description="Create or update the demo superuser (password from DEMO_ADMIN_PASSWORD) "
        "and load each app's demo data (idempotent).",
    )
    parser.add_argument("--count", type=int, default=300, help="rows per demo model (default: 300)")
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    export_service_urls()
    import django

    django.setup()
    # NOTE: imported after django.setup(): the setup module imports models.
    from devtools.demo_data.setup import DemoSetupError, demo_setup

    try:
        demo_setup(count=args.count)
    except DemoSetupError as e:
        sys.stderr.write(f"demo data: {e}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

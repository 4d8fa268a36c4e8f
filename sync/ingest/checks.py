"""``manage.py check``: the sources file (SYNC_INGEST_SOURCES_FILE) must be valid.

The same validation every run does at its start (``config.load_sources``), run before a
deploy: an unknown key or a bad value names the source and the key (DESIGN I10).
"""

from __future__ import annotations

from django.core import checks

from sync.ingest.exceptions import SourceConfigError
from sync.ingest.source_definitions import load_sources


@checks.register("sync")
def check_ingest_sources(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    try:
        load_sources()
    except SourceConfigError as e:
        return [
            checks.Error(
                str(e), hint="See docs/ingestion.md, 'Sources and configuration'.", id="sync.E101"
            )
        ]
    return []

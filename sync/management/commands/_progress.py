"""Shared by the sync commands: a one-line progress bar and the mapping of engine errors."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from django.core.management.base import CommandError

from sync.cache.exceptions import CacheUnavailableError, NotSyncedError
from sync.ingest.exceptions import IngestError


def bar(done: int, total: int, width: int = 30) -> str:
    filled = int(width * done / total) if total else width
    percent = 100 * done / total if total else 100
    return f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {percent:5.1f}%"


@contextlib.contextmanager
def engine_errors() -> Iterator[None]:
    """Turn the engine's and ingestion's errors a user can act on into ``CommandError``s."""
    try:
        yield
    except NotSyncedError as e:
        msg = f"{e}. List the synced models with `manage.py sync_verify --list`."
        raise CommandError(msg) from e
    except CacheUnavailableError as e:
        msg = f"{e}. Is the cache Redis (REDIS_URL) running?"
        raise CommandError(msg) from e
    except IngestError as e:  # its messages already say which source and what to fix
        raise CommandError(str(e)) from e

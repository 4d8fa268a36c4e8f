"""The entry point of the reader process (pipeline/reader.py).

It imports nothing of the project at its top, so that Django is set up before the models
are imported. Its forkserver loads ``reader_preload`` first: Django set up once there, every
reader forked from it starts ready.
"""

from __future__ import annotations

import os


def serve(job_bytes: bytes, out, stop) -> None:  # pragma: no cover - runs in the reader
    """The reader: Django set up (done already when forked from the preloaded server)."""
    _setup()
    from sync.ingest.pipeline.reader import run_job

    run_job(job_bytes, out.put, stop.is_set)


def _setup() -> None:  # pragma: no cover - runs in the forkserver and the reader
    import django
    from django.apps import apps

    if not apps.ready:
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
        django.setup()
        import sync.ingest.pipeline.reader  # noqa: F401 - imported once, in the server

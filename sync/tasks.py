"""Celery tasks: thin calls into the services, returning their summaries."""

from __future__ import annotations

from celery import shared_task

from sync.cache.replay import replay_pending
from sync.cache.services import verify_models, warm_models


@shared_task(name="sync.tasks.replay", ignore_result=True)
def replay() -> str:
    return str(replay_pending())


@shared_task(name="sync.tasks.warm")
def warm(labels: list[str] | None = None) -> list[dict]:
    return [vars(p) for p in warm_models(labels)]


@shared_task(name="sync.tasks.verify")
def verify(labels: list[str] | None = None, repair: bool = False) -> list[str]:
    return [str(report) for report in verify_models(labels, repair=repair)]
from sync.ingest import tasks as ingest_tasks  # noqa: E402, F401  (registers them)

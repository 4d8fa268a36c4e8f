"""The service checks behind ``/health/`` and the dashboard's services card: PostgreSQL and
each of its read replicas (answering, a standby, its replay lag), the cache Redis (and whether
it is warm), the engine's Redis when it is another server, the broker Redis and a Celery worker
answering a ping (the view itself is ``config.health``).

Each check answers within about ``HEALTH_CHECK_TIMEOUT`` (0.8 s) whatever is down or hung: the
checks run in parallel, each with that budget; a check that has not answered by then is
reported by name as not answering (a paused Redis or broker, a hung PostgreSQL).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from django.conf import settings
from health_check.base import HealthCheck, HealthCheckResult
from health_check.checks import Database
from health_check.contrib.celery import Ping
from health_check.contrib.redis import Redis
from health_check.exceptions import ServiceUnavailable, ServiceWarning

from sync import replicas


def async_redis_factory(url: str):
    """An asyncio Redis client for a ``redis://``, ``unix://`` or ``redis+socket://`` URL."""
    from redis.asyncio import Redis as AsyncRedis

    if url.startswith("redis+socket://"):
        path = url.removeprefix("redis+socket://").split("?", 1)[0]
        return lambda: AsyncRedis(
            unix_socket_path=path, socket_timeout=_budget(), socket_connect_timeout=_budget()
        )
    return lambda: AsyncRedis.from_url(
        url, socket_timeout=_budget(), socket_connect_timeout=_budget()
    )


def _budget() -> float:
    return settings.HEALTH_CHECK_TIMEOUT


# Synchronous checks (PostgreSQL, the Celery ping) run here. NOTE: a long-lived pool, not one
# per request: leaving a ``with ThreadPoolExecutor()`` block waits for its threads, and a
# thread blocked on a hung server would hold the answer. A blocked thread is left to finish
# (or fail) by itself; the answer has gone out without it.
executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="health")


class CacheRedis(Redis):
    def __repr__(self) -> str:
        return "Cache Redis"


class SyncCacheRedis(Redis):
    def __repr__(self) -> str:
        return "Sync cache Redis"


class BrokerRedis(Redis):
    def __repr__(self) -> str:
        return "Broker Redis"


class CeleryWorker(Ping):
    """A worker answering a ping, over a broker connection of the check's own.

    NOTE: not the app's connection pool (the library's default): after the broker was paused,
    restarted or dropped a client, a pooled connection stays broken and the next ping over it
    failed once with "Broken pipe", reported as an unknown error: a false alarm on a healthy
    worker (seen in CI). A new connection per check costs one connect, every 10 s or so.
    """

    # Cut off at the budget (a first ping sets up its reply queue, a paused broker never
    # answers): the words the check itself uses for no worker.
    unanswered = "Celery workers unavailable: no answer"

    def __repr__(self) -> str:
        return "Celery worker"

    def run(self) -> None:
        from kombu.exceptions import OperationalError
        from redis.exceptions import RedisError

        try:
            with self.app.connection_for_write() as connection:
                replies = self.app.control.ping(
                    timeout=self.timeout.total_seconds(), limit=self.limit, connection=connection
                )
                if not replies:
                    msg = "Celery workers unavailable"
                    raise ServiceUnavailable(msg)
                workers = list(self.active_workers(replies))
                queues = (
                    self.app.control.inspect(workers, connection=connection).active_queues() or {}
                )
        except (OSError, OperationalError, RedisError) as error:
            msg = f"broker connection failed: {error}"
            raise ServiceUnavailable(msg) from error
        self._require_queues(queues)

    def _require_queues(self, queues: dict) -> None:
        try:
            defined = {queue.name for queue in self.app.conf.task_queues}
        except TypeError:  # task_queues unset: the default queue only
            defined = {self.app.conf.task_default_queue}
        active = {queue.get("name") for listed in queues.values() for queue in listed}
        for name in sorted(defined - active):
            msg = f"No worker for Celery task queue {name}"
            raise ServiceUnavailable(msg)


class CacheWarmth(HealthCheck):
    """Is the cache Redis warm? After it lost its data (a restart, FLUSHALL) it says "cache
    cold" / "cache warming, N%" until the automatic warm has finished (sync/cache/autowarm.py).
    A cache Redis that does not answer is the "Cache Redis" check's to report; this one says
    its warmth is unknown."""

    def __repr__(self) -> str:
        return "Cache warmth"

    def run(self) -> None:
        from django.db import connections

        from sync.cache import autowarm

        try:
            current = autowarm.state()
        finally:
            connections.close_all()  # this pool thread's own connection
        # NOTE: unknown (the cache Redis does not answer) is said, not "OK": the warmth of a
        # cache nobody can read is not known, and the dashboard must not show it green.
        if current.status in {autowarm.COLD, autowarm.WARMING, autowarm.UNKNOWN}:
            raise ServiceWarning(current.describe())


@dataclasses.dataclass
class DatabaseReplica(HealthCheck):
    """A read replica (``DATABASE_REPLICA_URL``): a warning when it does not answer (its
    reads go to the primary meanwhile), is not a standby, has its replay paused, or is more
    than ``DATABASE_REPLICA_LAG_WARNING`` seconds behind."""

    name: str = "replica"

    def __repr__(self) -> str:
        return "Database replica" if self.name == "replica" else f"Database {self.name}"

    def run(self) -> None:
        problem = replicas.replica_status(self.name).problem(settings.DATABASE_REPLICA_LAG_WARNING)
        if problem:
            raise ServiceWarning(problem)


def checks() -> Iterator[Bounded]:
    """The checks, built per call (tests point ``settings.REDIS_URL`` elsewhere), each cut off
    at the budget: the database, the cache Redis, the engine's Redis when ``SYNC_REDIS_URL``
    names another (a cluster, Sentinel), the cache's warmth, the broker and a worker."""
    for check in _checks():
        yield Bounded(check)


def _checks() -> Iterator[HealthCheck]:
    yield Database()
    for name in replicas.replicas():
        yield DatabaseReplica(name)
    yield CacheRedis(client_factory=async_redis_factory(settings.REDIS_URL))
    if settings.SYNC_REDIS_URL != settings.REDIS_URL:
        # The engine's own Redis (a cluster, Sentinel's primary, or another server).
        from sync.cache.connection import async_client

        yield SyncCacheRedis(client_factory=lambda: async_client(socket_timeout=_budget()))
    yield CacheWarmth()
    yield BrokerRedis(client_factory=async_redis_factory(settings.CELERY_BROKER_URL))
    # The ping's own wait ends before the budget, so "no worker" is said as such. The app is
    # Celery's default one: the project's (config/celery.py; Celery's Django fixup makes it
    # the default of every thread).
    yield CeleryWorker(timeout=timedelta(seconds=_budget() / 2), limit=1)


class Bounded:
    """A check cut off at the budget: the library gives each check its own timeout plus a
    second and then waits for the slowest, so one hung server would hold the answer."""

    def __init__(self, check: HealthCheck) -> None:
        self.check = check

    async def get_result(self, executor=None) -> HealthCheckResult:
        try:
            return await asyncio.wait_for(self.check.get_result(executor), _budget())
        except TimeoutError:
            unanswered = getattr(self.check, "unanswered", "no answer")
            error = ServiceUnavailable(f"{unanswered} within {_budget():g} s")
            return HealthCheckResult(check=self.check, error=error, time_taken=_budget())

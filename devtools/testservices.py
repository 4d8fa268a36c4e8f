"""pytest plugin (``-p devtools.testservices``): real servers for the test run.

It runs before pytest-django reads the settings. For every service URL that is unset it starts
an embedded server for this run alone, under ``.run/test-<pid>`` (apart from the demo's
``.run/dev`` and from any other test run in the same checkout), and exports the URL; at the end
of the run it stops them and removes the directory. Servers of a run that was killed before it
could clean up are stopped and removed by the next run. ``DATABASE_URL`` / ``REDIS_URL`` /
``CELERY_BROKER_URL`` point the suite at external servers instead.

With pytest-xdist (``-n 2``) the controller starts the servers and each worker (``gw0``,
``gw1`` …) gets what its tests may empty, pause or kill without touching another worker's:

* PostgreSQL is shared: pytest-django gives each worker its own test database
  (``test_<name>_gw0`` …), and advisory locks and backends are per database.
* Redis is not: each worker starts its own embedded cache and broker Redis (``cache-gw0.sock``
  … in the run's directory, so the controller's stop and the next run's clean-up find them
  too). An external ``REDIS_URL`` / ``CELERY_BROKER_URL`` is used on a database number of the
  worker's own: ``gw0`` keeps the configured one, ``gwN`` the Nth below it (wrapping at 16),
  e.g. ``/15`` and ``/14``.
"""

from __future__ import annotations

import os
import shutil
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest

from devtools.devservices import TEST_PROFILE_PREFIX, RedisServer, Services, prune_test_runs

# How the controller tells its workers which servers are embedded (the URLs it exports say
# where they are, not who started them).
EMBEDDED_ENV = "SYNCOPS_TEST_EMBEDDED"
REDIS_DATABASES = 16

_state: dict[str, object] = {"services": None, "embedded": frozenset()}


def embedded() -> frozenset[str]:
    """Which of ``database``, ``cache``, ``broker`` are embedded servers of this run."""
    return _state["embedded"]  # type: ignore[return-value]


def worker() -> str:
    """This process's xdist worker id (``gw0`` …), ``""`` without xdist or in its controller."""
    return os.environ.get("PYTEST_XDIST_WORKER", "")


def services() -> Services:
    """This run's servers (and its directory, for servers a test starts itself). In an xdist
    worker, ``cache`` and ``broker`` are that worker's own Redis servers."""
    svc = _state["services"]
    if svc is None:
        svc = _state["services"] = Services(os.environ["SYNCOPS_SERVICES_PROFILE"])
        if worker():
            svc.cache = RedisServer(svc.directory, f"cache-{worker()}")
            svc.broker = RedisServer(svc.directory, f"broker-{worker()}")
    return svc  # type: ignore[return-value]


def worker_redis_url(url: str, index: int) -> str:
    """``url`` on the database ``index`` places below its own (wrapping at 16); a URL without
    a database number to move (a cluster, a sentinel) is returned as it is."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    if parts.scheme == "redis+socket":
        field = "virtual_host"
    elif parts.scheme == "unix" or "db" in query:
        field = "db"
    elif parts.scheme in {"redis", "rediss"}:
        path = parts.path.strip("/") or "0"
        if not path.isdigit():
            return url
        database = (int(path) - index) % REDIS_DATABASES
        return urlunsplit(parts._replace(path=f"/{database}"))
    else:
        return url
    query[field] = str((int(query.get(field) or 0) - index) % REDIS_DATABASES)
    return urlunsplit(parts._replace(query=urlencode(query)))


def _start_worker_servers() -> None:
    """In an xdist worker: its own cache and broker Redis, or its own database number on
    external ones; the controller's PostgreSQL (or the external one) as it is."""
    _state["embedded"] = frozenset(filter(None, os.environ.get(EMBEDDED_ENV, "").split(",")))
    index = int(worker().removeprefix("gw"))
    svc = services()
    for name, variables, server, url in (
        ("cache", ("REDIS_URL", "SYNC_REDIS_URL"), svc.cache, lambda s: s.url),
        ("broker", ("CELERY_BROKER_URL",), svc.broker, lambda s: s.broker_url),
    ):
        if name in embedded():
            server.start()
            os.environ[variables[0]] = url(server)
            continue
        for variable in variables:
            if value := os.environ.get(variable):
                os.environ[variable] = worker_redis_url(value, index)


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config, parser, args) -> None:
    if worker():
        _start_worker_servers()  # the controller started the rest and exported the URLs
        return
    prune_test_runs()
    wanted = {
        "database": not os.environ.get("DATABASE_URL"),
        "cache": not os.environ.get("REDIS_URL"),
        "broker": not os.environ.get("CELERY_BROKER_URL"),
    }
    _state["embedded"] = frozenset(name for name, want in wanted.items() if want)
    os.environ[EMBEDDED_ENV] = ",".join(sorted(embedded()))
    os.environ["SYNCOPS_SERVICES_PROFILE"] = f"{TEST_PROFILE_PREFIX}-{os.getpid()}"
    os.environ.setdefault("DJANGO_ENV", "development")
    # NOTE: no watchdog thread in the test process (the test client imports config.asgi);
    # tests of the watchdog start it themselves.
    os.environ.setdefault("SYNC_WATCHDOG_INTERVAL", "0")
    svc = services()
    _state["owner"] = True
    if any(wanted.values()):
        os.environ.update(svc.start(**wanted))


def pytest_unconfigure(config) -> None:
    svc = _state["services"]
    if svc is None:
        return
    if _state.get("owner"):
        svc.stop()  # type: ignore[attr-defined]
        shutil.rmtree(svc.directory, ignore_errors=True)  # type: ignore[attr-defined]
    else:  # an xdist worker: its own Redis servers (the controller stops the rest)
        for name in ("cache", "broker"):
            if name in embedded():
                getattr(svc, name).stop()
    _state["services"] = None

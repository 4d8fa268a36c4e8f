"""I2 in Redis: the compare-and-set protocol, against the real server."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from sync.cache import store

KEY = "syncops:test.cas:1"


def write(version: int, value: str | None) -> bool:
    (applied,) = store.write_many(
        [store.CacheWrite(KEY, version, (value or "").encode(), "", value is None, 60_000)]
    )
    return applied


def state(client) -> tuple[int, bytes, bool] | None:
    h = client.hgetall(KEY)
    return (int(h[b"v"]), h[b"p"], h[b"t"] == b"1") if h else None


def test_older_write_is_rejected(redis_raw) -> None:
    assert write(5, "five") is True
    assert write(4, "four") is False
    assert write(5, "five again") is False
    assert state(redis_raw) == (5, b"five", False)


def test_tombstone_blocks_a_late_older_write(redis_raw) -> None:
    write(5, "five")
    assert write(7, None) is True
    assert write(6, "late six") is False
    assert state(redis_raw) == (7, b"", True)
    assert write(8, "re-created") is True
    assert state(redis_raw) == (8, b"re-created", False)


def test_write_ends_a_fill_lease_and_sets_ttl(redis_raw) -> None:
    assert store.lease(KEY, token="t1", lease_ms=5000) == store.LEASE_GRANTED
    assert store.read_row(KEY) is None  # a lease alone is no row
    assert store.lease(KEY, token="t2", lease_ms=5000) == store.LEASED_ELSEWHERE
    write(3, "filled")
    assert redis_raw.hget(KEY, "l") is None
    assert 0 < redis_raw.pttl(KEY) <= 60_000
    hit = store.lease(KEY, token="t3", lease_ms=5000)
    assert isinstance(hit, store.Hit) and hit.payload == b"filled"
    assert store.read_row(KEY) == hit


class CasProtocol(RuleBasedStateMachine):
    """Any interleaving of versioned writes and deletes leaves the newest one in Redis."""

    def __init__(self) -> None:
        super().__init__()
        import redis
        from django.conf import settings as dj

        self.client = redis.Redis.from_url(dj.SYNC_REDIS_URL)
        self.client.delete(KEY)
        self.newest: tuple[int, str | None] | None = None

    def teardown(self) -> None:
        self.client.delete(KEY)
        self.client.close()

    def _apply(self, version: int, value: str | None) -> None:
        applied = write(version, value)
        expected = self.newest is None or version > self.newest[0]
        assert applied == expected
        if expected:
            self.newest = (version, value)

    @rule(version=st.integers(1, 50), value=st.text(max_size=8))
    def upsert(self, version: int, value: str) -> None:
        self._apply(version, value)

    @rule(version=st.integers(1, 50))
    def delete(self, version: int) -> None:
        self._apply(version, None)

    @invariant()
    def newest_wins(self) -> None:
        got = state(self.client)
        if self.newest is None:
            assert got is None
        else:
            version, value = self.newest
            assert got == (version, (value or "").encode(), value is None)


TestCasProtocol = CasProtocol.TestCase
TestCasProtocol.settings = settings(
    max_examples=60,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@pytest.fixture(autouse=True)
def _clean_key(redis_raw):
    redis_raw.delete(KEY)
    yield
    redis_raw.delete(KEY)

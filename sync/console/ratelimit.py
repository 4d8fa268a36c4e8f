"""Rate limits per role on every API under ``/api/``, counted in the cache Redis.

Who is counted, and against which limit (each a ``limits`` string such as ``120/minute``,
from settings, see README's variables table):

* anonymous callers (and accounts without a console role): per client IP,
  ``API_RATELIMIT_ANONYMOUS``;
* the viewer role, per user: ``API_RATELIMIT_VIEWER``;
* the operator role (superusers too), per user: ``API_RATELIMIT_OPERATOR``;
* ``/api/events`` (Server-Sent Events): connection attempts, per user or IP,
  ``API_RATELIMIT_EVENTS`` — an open stream is one request, whatever it carries.

Fixed windows (the ``limits`` library's Redis storage: one ``INCR`` with its expiry in a Lua
script). A role's limit is shared by the three APIs (public catalog, staff catalog, console).

Failing open (DESIGN I1): a limit is a guard, never a reason to refuse service. When the cache
Redis cannot be reached (down, paused, timing out) the request passes unlimited, a warning is
logged once per outage, and for ``API_RATELIMIT_FAIL_OPEN_COOLDOWN`` seconds no request asks
Redis again, so an outage costs one socket timeout per cooldown, not one per request.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from functools import lru_cache

import redis
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest
from django.utils.crypto import salted_hmac
from limits import RateLimitItem, parse
from limits.errors import StorageError
from limits.storage import RedisStorage
from limits.strategies import FixedWindowRateLimiter

from sync.access import roles
from sync.access.client_ip import client_ip

logger = logging.getLogger(__name__)

KEY_PREFIX = "api-ratelimit"  # outside the sync engine's key space (<prefix>:<app.model>:…)
EVENTS_PATH = "/api/events"
SETTINGS = {
    "anonymous": "API_RATELIMIT_ANONYMOUS",
    "viewer": "API_RATELIMIT_VIEWER",
    "operator": "API_RATELIMIT_OPERATOR",
    "events": "API_RATELIMIT_EVENTS",
}


@dataclass(frozen=True)
class Verdict:
    """One request's count against its limit; ``headers`` are the standard rate-limit ones."""

    allowed: bool
    limit: int
    remaining: int
    reset: int  # seconds until the window starts again
    window: int  # the window's length in seconds

    @property
    def headers(self) -> dict[str, str]:
        headers = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset),
            "RateLimit-Policy": f"{self.limit};w={self.window}",
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.reset)
        return headers


@lru_cache(maxsize=16)
def limit_for(text: str) -> RateLimitItem:
    try:
        return parse(text)
    except ValueError as e:
        msg = f"not a rate limit: {text!r} (write e.g. 120/minute)"
        raise ImproperlyConfigured(msg) from e


def check_settings() -> None:
    """Every configured limit parses; an invalid one stops startup with its setting's name."""
    for name in SETTINGS.values():
        try:
            limit_for(getattr(settings, name))
        except ImproperlyConfigured as e:
            msg = f"{name}: {e}"
            raise ImproperlyConfigured(msg) from e


@lru_cache(maxsize=4)
def _limiter(url: str) -> FixedWindowRateLimiter:
    # NOTE: a pool of our own with the cache's short timeouts: a hung Redis costs one short
    # timeout (then the cooldown below), never a hung request.
    pool = redis.ConnectionPool.from_url(
        url,
        socket_timeout=settings.REDIS_SOCKET_TIMEOUT,
        socket_connect_timeout=settings.REDIS_CONNECT_TIMEOUT,
    )
    storage = RedisStorage(
        "redis://", connection_pool=pool, key_prefix=KEY_PREFIX, wrap_exceptions=True
    )
    return FixedWindowRateLimiter(storage)


class _FailOpen:
    """Remembers a failing Redis: skip it for the cooldown, warn once per outage."""

    def __init__(self) -> None:
        self.until = 0.0
        self.failing = False
        self.lock = threading.Lock()

    def skipping(self) -> bool:
        return time.monotonic() < self.until

    def failed(self, error: Exception) -> None:
        with self.lock:
            self.until = time.monotonic() + settings.API_RATELIMIT_FAIL_OPEN_COOLDOWN
            first, self.failing = not self.failing, True
        if first:
            logger.warning(
                "API rate limits are not enforced: the cache Redis is unreachable "
                "(%s); requests pass unlimited until it answers again",
                type(error).__name__,
            )

    def succeeded(self) -> None:
        if self.failing:
            self.failing = False
            logger.info("API rate limits are enforced again: the cache Redis answers")


fail_open = _FailOpen()


def _ip(request: HttpRequest) -> str:
    # NOTE: keyed, not the address itself: an IP address is personal data, and Redis holds no
    # PII in a reversible form (DESIGN I5).
    address = client_ip(request) or "unknown"
    return "ip:" + salted_hmac(KEY_PREFIX, address, algorithm="sha256").hexdigest()[:32]


def bucket(request: HttpRequest) -> tuple[str, str]:
    """(the limit's name, who is counted) for this request."""
    user = request.user
    identity = f"user:{user.pk}" if user.is_authenticated else _ip(request)
    if request.path == EVENTS_PATH:
        return "events", identity
    if roles.can_operate(user):
        return "operator", identity
    if roles.can_view(user):
        return "viewer", identity
    return "anonymous", _ip(request)


def count(request: HttpRequest) -> Verdict | None:
    """Count the request; ``None`` when limits are off or Redis cannot count (fail open)."""
    if not settings.API_RATELIMIT_ENABLED or fail_open.skipping():
        return None
    name, identity = bucket(request)
    item = limit_for(getattr(settings, SETTINGS[name]))
    limiter = _limiter(settings.REDIS_URL)
    try:
        allowed = limiter.hit(item, name, identity)
        reset_at, remaining = limiter.get_window_stats(item, name, identity)
    except (StorageError, redis.RedisError, OSError) as e:
        fail_open.failed(e)
        return None
    fail_open.succeeded()
    reset = max(1, math.ceil(reset_at - time.time()))
    return Verdict(
        allowed=allowed,
        limit=item.amount,
        remaining=remaining,
        reset=reset,
        window=item.get_expiry(),
    )

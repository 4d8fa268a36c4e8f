"""Waiting on a condition with a deadline (never a bare sleep in a test)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable


def wait_until(
    predicate: Callable[[], object],
    timeout: float = 15.0,
    interval: float = 0.02,
    *,
    ignoring: tuple[type[BaseException], ...] = (),
    what: str = "condition",
) -> object:
    """Poll ``predicate`` until it returns something truthy; fail the test at the deadline.

    ``ignoring``: errors that mean "not yet" (a server still starting), not a failure."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(*ignoring):
            if result := predicate():
                return result
        time.sleep(interval)
    result = predicate()
    assert result, f"{what} not met within {timeout}s"
    return result

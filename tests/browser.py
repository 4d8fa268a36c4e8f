"""Headless Chromium for the browser tests: Debian's ``chromium`` driven by Playwright (never a
browser Playwright downloads). ``./dev test`` installs it when it is missing and it can; without
it the browser tests skip, except in CI (``CI=true``), where a missing browser fails the run.
The ``browser`` fixture (tests/conftest.py) launches it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def launched_browser(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    if not CHROMIUM.exists():
        reason = (
            f"{CHROMIUM} is missing: `./dev test` installs Debian's chromium with "
            "apt-get when it runs as root; install it to run the browser tests"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true and no browser: {reason}")
        pytest.skip(reason)
    # NOTE: Playwright's sync API runs an event loop in this thread; the test's own ORM
    # calls between browser steps are plain synchronous code.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield chromium
        finally:
            chromium.close()


# Collects what a page's Content Security Policy refused: an init script (``add_init_script``),
# which runs outside the page's CSP. ``csp_problems`` reads it back with the console messages.
CSP_WATCH = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", function (e) {
  window.__cspViolations.push(e.violatedDirective + " " + (e.blockedURI || "inline") +
                              " at " + e.sourceFile + ":" + e.lineNumber);
});
"""


def is_csp_message(text: str) -> bool:
    """A console message in which Chromium says the policy refused something."""
    return "Content Security Policy" in text or "Refused to" in text


def csp_events(page) -> list[str]:
    """The violation events of the current page (``CSP_WATCH`` must have been added)."""
    return page.evaluate("window.__cspViolations || []")

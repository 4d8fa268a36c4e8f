"""The Event system page's replay tool in a real browser (headless Chromium through
Playwright) against a real ASGI server (uvicorn on a local port, as /api/events needs): the
debugging client opens under the Content-Security-Policy, shows the reset for an id older
than the stream, the replayed frames of the chosen part as text, then a live one."""

from __future__ import annotations

import pytest
from django.db import connections

from config.env import ROOT
from tests.catalog.conftest import new_part
from tests.catalog.test_sse import _set_stock
from tests.console.conftest import PASSWORD, make_staff_user

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
ARTIFACTS = ROOT / "artifacts"  # screenshots (git-ignored)
WAIT = 30_000  # milliseconds the browser waits for a condition


def test_the_replay_tool_shows_the_frames_as_they_arrive(browser, asgi_server) -> None:
    try:
        _replay_flow(browser, asgi_server.url)
    finally:
        # NOTE: with Playwright's greenlets running, this test's ORM calls get connections
        # of their own context, which pytest-django's teardown would not close.
        connections.close_all()


def _replay_flow(browser, url: str) -> None:
    make_staff_user("viewer")
    part, other = new_part(quantity=30, reserved=0), new_part()
    page = browser.new_page()
    page.set_default_timeout(WAIT)
    refused: list[str] = []
    page.on(
        "console",
        lambda message: (
            refused.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    page.goto(f"{url}/admin/login/?next=/admin/")
    page.fill("#id_username", "viewer-user")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#console-dashboard")
    page.click("#events-link")
    page.wait_for_selector("#console-events")

    # From an id older than the stream: a reset, then what the stream holds for the part.
    page.fill("#replay-id", "1-0")
    page.fill("#replay-parts", str(part.pk))
    page.click("#replay-form button[type=submit]")
    page.wait_for_selector("#replay-warning")
    page.wait_for_selector("#replay-frames li:nth-child(3)")
    frames = page.locator("#replay-frames li pre").all_text_contents()
    assert frames[0].startswith("event: reset\ndata: ")
    assert frames[1].startswith("id: ")
    assert "\nevent: part\ndata: " in frames[1]
    assert "\nevent: stock\ndata: " in frames[2]
    assert f'"part": {part.pk}' in frames[2]
    assert all(f'"part": {other.pk}' not in frame for frame in frames)  # filtered out
    assert "open · 3 frames received" in page.text_content("#replay-state")

    _set_stock(part.pk, 29)  # and then live
    page.wait_for_selector("#replay-frames li:nth-child(4)")
    live = page.locator("#replay-frames li pre").nth(3).text_content()
    assert '"quantity": 29' in live
    assert '"committed_at": ' in live
    page.click("#replay-stop")
    assert "stopped" in page.text_content("#replay-state")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "console-events.png"), full_page=True)
    assert refused == []

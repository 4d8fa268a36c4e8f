"""The console's slow requests page: who may see it, what it shows (request id, time,
duration, path without its query string, the SQL with placeholders), and that it still
answers when the cache Redis holding the log does not."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from sync.ops import slow
from sync.ops.slow import SlowQuery, SlowRequest

pytestmark = pytest.mark.django_db

URL = "/admin/console/slow/"


def test_the_url_and_the_dashboard_link() -> None:
    assert reverse("admin:console_slow") == URL


def test_anonymous_goes_to_the_login_and_staff_without_a_role_is_refused(
    client_for, plain_staff
) -> None:
    anonymous = client_for("anonymous").get(URL)
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/admin/login/")
    staff = Client()
    staff.force_login(plain_staff, backend="django.contrib.auth.backends.ModelBackend")
    assert staff.get(URL).status_code == 403


def test_a_viewer_sees_requests_and_statements_from_the_dashboard(client_for, settings) -> None:
    viewer = client_for("viewer")
    dashboard = viewer.get("/admin/").content.decode()
    assert f'href="{URL}"' in dashboard
    empty = viewer.get(URL).content.decode()
    assert "No slow requests kept." in empty and "No slow statements kept." in empty

    settings.HTTP_SLOW_REQUEST_MS = 0
    settings.HTTP_SLOW_QUERY_MS = 0
    # An admin search by e-mail: the address is in the query string only, which is not kept.
    searched = client_for("superuser").get(
        "/admin/auth/user/?q=searched.person%40example.com",
        headers={"x-request-id": "console-slow-1"},
    )
    assert searched.status_code == 200
    page = viewer.get(URL)
    assert page.status_code == 200
    html = page.content.decode()
    assert "console-slow-1" in html
    assert "GET /admin/auth/user/" in html
    assert "example.com" not in html and "searched.person" not in html
    assert "%s" in html  # statements with their placeholders
    assert "from 0 ms" in html


def test_recorded_entries_in_order_and_cut(client_for, settings) -> None:
    settings.HTTP_SLOW_QUERY_MS = 10**9  # the page's own requests are not recorded
    settings.HTTP_SLOW_REQUEST_MS = 10**9
    columns = ", ".join(f"col_{n}" for n in range(500))
    long_sql = f"SELECT {columns} FROM t WHERE a = %s"  # noqa: S608 - text, never run
    slow.record(
        SlowRequest(
            request_id="rec-1",
            method="POST",
            path=slow.clean_path("/admin/x/?email=a@b.example"),
            status=500,
            ms=1234.5,
            slow=True,
            queries=[SlowQuery(ms=999.0, sql=slow.clean_sql(long_sql))],
        )
    )
    slow.record(SlowRequest("rec-2", "GET", "/b/", 200, 10.0, slow=False))  # nothing slow
    [request] = slow.recent("request")
    assert (request["request_id"], request["path"], request["status"]) == (
        "rec-1",
        "/admin/x/",
        500,
    )
    [query] = slow.recent("query")
    assert len(query["sql"]) == slow.SQL_LIMIT and query["sql"].endswith("…")
    html = client_for("viewer").get(URL).content.decode()
    assert "rec-1" in html and "1.2 s" in html and "999 ms" in html


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_the_page_says_so_when_redis_is_paused(client_for, redis_control) -> None:
    viewer = client_for("viewer")
    redis_control.pause()
    try:
        page = viewer.get(URL)
    finally:
        redis_control.resume()
    assert page.status_code == 200
    assert "The slow-request log cannot be read now" in page.content.decode()

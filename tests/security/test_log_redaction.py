"""No PII in any log line the product emits, the ASGI server's access lines included
(redact_pii on every record); and the phone rule leaves UUIDs (Celery task ids) whole.

The access-log test starts the web server exactly as the demo does (``devtools.demo``'s argv:
uvicorn on ``config.asgi``) on a free port, sends admin searches whose query strings carry
canaries (an e-mail, a name, a URL-encoded phone number), stops it and scans everything it
wrote.
"""

from __future__ import annotations

import logging
import signal
import socket
import subprocess
import urllib.error
import urllib.request
import uuid
from urllib.parse import quote, quote_plus

import pytest

from config.env import ROOT
from devtools.demo import web_server_argv
from sync.redaction import RedactPiiFilter, redact
from tests.subprocesses import child_env
from tests.waiting import wait_until

TASK_ID = "9d2f3a10-5417-4120-9876-012345678901"  # digit runs the phone rule took


def test_url_encoded_pii_is_decoded_before_it_is_matched():
    assert redact("/admin/customers/customer/?q=zebulon.canary%40pii.example") == (
        "/admin/customers/customer/?q=[redacted]"
    )
    assert redact("/admin/customers/customer/zebulon.canary%40pii.example/change/") == (
        "/admin/customers/customer/[email]/change/"
    )
    assert redact("/admin/x/%2B1%20555%200199%204242/history/") == "/admin/x/[phone]/history/"
    assert redact("lookup for jane%40example.com failed") == "lookup for [email] failed"
    # A declared value behind %-escapes too.
    assert redact("row /x/Jane%20Doe/", values=["Jane Doe"]) == "row /x/[pii]/"
    # Nothing to find: the text stays as it was, escapes included.
    assert redact("100%25 of /static/a%20b.css") == "100%25 of /static/a%20b.css"


def test_query_string_values_are_never_logged():
    """A name has no pattern: every query value goes, the parameter names stay."""
    line = '127.0.0.1:5 - "GET /admin/buyers/buyer/?q=Zebulon+Canarywright&o=2 HTTP/1.1" 200'
    assert redact(line) == (
        '127.0.0.1:5 - "GET /admin/buyers/buyer/?q=[redacted]&o=[redacted] HTTP/1.1" 200'
    )
    assert redact("fetching https://sheets.example/v4/x?key=SECRET&range=A1") == (
        "fetching https://sheets.example/v4/x?key=[redacted]&range=[redacted]"
    )
    assert redact("is 1/2? yes") == "is 1/2? yes"


def test_uuids_and_addresses_stay_whole():
    for text in (
        f"Task sync.tasks.replay[{TASK_ID}] succeeded",
        "task 12345678-1234-1234-1234-123456789012 retried",
        f"intent {uuid.UUID(int=10**30)} dead",
        "peer 10.0.0.1:443 and 127.0.0.1",
    ):
        assert redact(text) == text
    # …while a phone number beside them is still a phone number.
    assert redact(f"{TASK_ID} called +1 555 0199 4242") == f"{TASK_ID} called [phone]"


def test_dates_and_times_stay_whole():
    for text in (
        "run 7 finished 2026-12-06 23:55:13,104",
        "at 2026-12-06T23:55:13Z",
        "2026-12-06T23:55:13.123456+01:00 done",
        "due 2026-12-06 14:00",
        "on 2026-12-06 only",
    ):
        assert redact(text) == text
    assert redact("2026-12-06 23:55 called +44 20 7946 0958") == ("2026-12-06 23:55 called [phone]")


def test_the_filter_keeps_a_formatters_arguments():
    """uvicorn's access formatter unpacks ``record.args``: each argument is redacted in
    place, so the formatter still works and prints no PII."""
    from uvicorn.logging import AccessFormatter

    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/admin/?q=jane%40example.com", "1.1", 200),
        None,
    )
    assert RedactPiiFilter().filter(record) is True
    assert isinstance(record.args, tuple)
    line = AccessFormatter('%(client_addr)s - "%(request_line)s" %(status_code)s').format(record)
    assert line == '127.0.0.1:5000 - "GET /admin/?q=[redacted] HTTP/1.1" 200 OK'


def test_records_with_mapping_or_no_arguments_are_redacted_too():
    mapped = logging.LogRecord(
        "sync", logging.INFO, __file__, 1, "mail %(to)s", ({"to": "jane@example.com"},), None
    )
    RedactPiiFilter().filter(mapped)
    assert mapped.getMessage() == "mail [email]"
    bare = logging.LogRecord("sync", logging.INFO, __file__, 1, "GET /x?q=Jane+Doe", None, None)
    RedactPiiFilter().filter(bare)
    assert bare.getMessage() == "GET /x?q=[redacted]"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str) -> int:
    request = urllib.request.Request(url, headers={"Accept": "text/html"})  # noqa: S310 (http)
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as e:
        return e.code


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


@pytest.mark.django_db(transaction=True)
def test_the_web_servers_access_log_carries_no_pii():
    tag = uuid.uuid4().hex[:10]
    canaries = {
        "email": f"canary.{tag}@pii.example",
        "name": f"Canarywright{tag}",
        "phone": f"+1 555 {int(tag[:6], 16) % 10**7:07d}",
    }
    port = _free_port()
    server = subprocess.Popen(
        web_server_argv("127.0.0.1", port),
        cwd=ROOT,
        env={**child_env(), "DEBUG": "true"},  # as the demo runs
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            lambda: _get(f"{base}/admin/login/") > 0,
            timeout=60,
            ignoring=(OSError,),
            what="the web server answering",
        )
        paths = [
            f"/admin/customers/customer/?q={quote_plus(canaries['email'])}",
            f"/admin/buyers/buyer/?q={quote_plus(canaries['name'])}&o=2",
            f"/admin/sellers/seller/?q={quote_plus(canaries['phone'])}",
            f"/admin/customers/customer/{quote(canaries['email'], safe='')}/change/",
            f"/admin/sync/syncintent/{TASK_ID}/change/",
            # A 404 is logged by Django's own "django" logger: through the same handler too
            # (Django's default one printed "Not Found: <path>" unredacted under DEBUG).
            f"/api/no-such-thing/{quote(canaries['email'], safe='')}",
            f"/no-such-page/{quote(canaries['email'], safe='')}/",
        ]
        for path in paths:
            assert _get(base + path) in (200, 302, 404)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            output, _ = server.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            output, _ = server.communicate()
    access = [line for line in output.splitlines() if "uvicorn.access" in line]
    assert len(access) >= len(paths), output  # the access lines are there, through LOGGING
    assert any("/admin/customers/customer/?q=[redacted]" in line for line in access), access
    assert any(f"/admin/sync/syncintent/{TASK_ID}/change/" in line for line in access), access
    digits = "".join(ch for ch in canaries["phone"] if ch.isdigit())
    forms = {
        canaries["email"],
        quote(canaries["email"]),
        quote_plus(canaries["email"]),
        canaries["name"],
        canaries["phone"],
        quote_plus(canaries["phone"]),
        digits,
        canaries["phone"][-8:],
        tag,
    }
    found = sorted(form for form in forms if form.lower() in output.lower())
    assert not found, f"PII in the web server's output: {found}\n{output}"


def test_a_huge_line_is_cut_at_a_space_and_redacted_in_linear_time():
    """A fuzzed header of 100k characters reached ``redact`` through a run's message: every
    pattern tried every position of it (minutes). Over LINE_LIMIT a line is cut at a space."""
    from sync.redaction import LINE_LIMIT

    text = "its columns are: " + "y" * 100_000 + " kemal@example.com"
    assert redact(text) == f"its columns are: [{100_000 + 19:,} characters cut]"
    long_line = ("see a.b@example.com " * 400).strip()  # 7,999 characters, spaces between
    out = redact(f"first line\n{long_line}\nlast +44 20 7946 0958")
    first, middle, last = out.split("\n")
    assert (first, last) == ("first line", "last [phone]")
    assert middle.startswith("see [email] see [email]") and "@" not in middle
    assert middle.endswith("characters cut]") and len(middle) < LINE_LIMIT

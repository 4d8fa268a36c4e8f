"""Login lock-out per username and address, and the client's address by one rule:
one person's typos do not lock their office out; a forged ``X-Forwarded-For``
neither moves the lock-out nor reaches the logs; behind N trusted proxies the right hop
counts, in django-axes, the staff audit and the catalog's change log alike."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator

import httpx
import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.test import Client, RequestFactory

from catalog.services import Actor
from config.env import ROOT
from devtools.demo import web_server_argv
from sync.access.client_ip import client_ip
from sync.console.audit import record_staff_action
from sync.models import SecurityEvent
from tests.console.conftest import PASSWORD, make_staff_user
from tests.subprocesses import child_env
from tests.waiting import wait_until

LOGIN = "/admin/login/?next=/admin/"
PROXY = "10.0.0.2"  # our reverse proxy, as the web server sees it


def log_in(client: Client, username: str, password: str, **extra):
    return client.post(
        LOGIN, {"username": username, "password": password, "next": "/admin/"}, **extra
    )


def fail_until_locked(client: Client, username: str, **extra) -> None:
    for n in range(settings.AXES_FAILURE_LIMIT):
        response = log_in(client, username, "wrong", **extra)
        expected = 429 if n == settings.AXES_FAILURE_LIMIT - 1 else 200
        assert response.status_code == expected, (n, response.status_code)


@pytest.mark.django_db
def test_one_users_failures_do_not_lock_another_user_behind_the_same_address():
    victim, colleague = make_staff_user("operator"), make_staff_user("viewer")
    fail_until_locked(Client(), victim.username)
    assert log_in(Client(), victim.username, PASSWORD).status_code == 429  # still locked
    # The colleague at the next desk, same address (the office's proxy): not locked.
    response = log_in(Client(), colleague.username, PASSWORD)
    assert response.status_code == 302 and response["Location"] == "/admin/"
    # And the victim from another address (e.g. home) is not locked by the attacker either.
    assert log_in(Client(REMOTE_ADDR="198.51.100.9"), victim.username, PASSWORD).status_code == 302
    attempt = AccessAttempt.objects.get(username=victim.username)
    assert attempt.ip_address == "127.0.0.1"


@pytest.mark.django_db
def test_a_rotating_forwarded_for_from_an_untrusted_peer_does_not_bypass_the_lockout():
    user = make_staff_user("operator")
    client = Client()
    for n in range(settings.AXES_FAILURE_LIMIT):
        log_in(client, user.username, "wrong", HTTP_X_FORWARDED_FOR=f"203.0.113.{n + 1}")
    refused = log_in(client, user.username, PASSWORD, HTTP_X_FORWARDED_FOR="203.0.113.200")
    assert refused.status_code == 429
    # The log names the peer, never an address the client wrote.
    ips = set(SecurityEvent.objects.filter(kind="login_failed").values_list("ip", flat=True))
    assert ips == {"127.0.0.1"}


@pytest.mark.django_db
def test_behind_one_trusted_proxy_the_address_it_saw_counts(settings):
    settings.TRUSTED_PROXY_COUNT = 1
    user = make_staff_user("operator")
    behind = Client(REMOTE_ADDR=PROXY)
    # The client forges a first entry each time; our proxy appends the address it saw.
    for n in range(settings.AXES_FAILURE_LIMIT):
        log_in(behind, user.username, "wrong", HTTP_X_FORWARDED_FOR=f"192.0.2.{n + 1}, 203.0.113.5")
    assert (
        log_in(
            behind, user.username, PASSWORD, HTTP_X_FORWARDED_FOR="192.0.2.99, 203.0.113.5"
        ).status_code
        == 429
    )
    assert AccessAttempt.objects.get(username=user.username).ip_address == "203.0.113.5"
    # Another client behind the same proxy logs in as the same user: not locked.
    assert (
        log_in(behind, user.username, PASSWORD, HTTP_X_FORWARDED_FOR="203.0.113.6").status_code
        == 302
    )
    assert set(SecurityEvent.objects.filter(kind="login_failed").values_list("ip", flat=True)) == {
        "203.0.113.5"
    }


@pytest.mark.parametrize(
    ("count", "remote", "forwarded", "expected"),
    [
        (0, "10.0.0.2", "203.0.113.5", "10.0.0.2"),  # no proxy: the header is anyone's
        (1, "10.0.0.2", "203.0.113.5", "203.0.113.5"),
        (1, "10.0.0.2", "6.6.6.6, 203.0.113.5", "203.0.113.5"),  # the forged entry is ignored
        (2, "10.0.0.2", "6.6.6.6, 203.0.113.5, 10.0.0.1", "203.0.113.5"),
        (1, "10.0.0.2", "203.0.113.5:4711", "203.0.113.5"),  # a port
        (1, "10.0.0.2", "[2001:db8::5]:443", "2001:db8::5"),  # IPv6 in brackets
        (1, "10.0.0.2", "2001:DB8::5", "2001:db8::5"),
        (1, "", "203.0.113.5", "203.0.113.5"),  # a unix socket's peer has no address
        (2, "10.0.0.2", "203.0.113.5", "10.0.0.2"),  # fewer hops than proxies: only the peer
        (1, "10.0.0.2", "", "10.0.0.2"),
        (1, "10.0.0.2", "not-an-address", "10.0.0.2"),  # a broken proxy: the peer
        (0, "", "", None),
    ],
)
def test_client_ip(settings, count, remote, forwarded, expected):
    settings.TRUSTED_PROXY_COUNT = count
    meta = {"REMOTE_ADDR": remote} if remote else {}
    if forwarded:
        meta["HTTP_X_FORWARDED_FOR"] = forwarded
    request = RequestFactory().get("/", **meta)
    if not remote:
        del request.META["REMOTE_ADDR"]
    assert client_ip(request) == expected


@pytest.mark.django_db
def test_the_staff_audit_and_the_change_log_use_the_same_rule(settings):
    settings.TRUSTED_PROXY_COUNT = 1
    operator = make_staff_user("operator")
    request = RequestFactory().post(
        "/admin/", REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.5"
    )
    request.user = operator
    assert record_staff_action(request, action="probe").ip == "203.0.113.5"
    assert Actor.from_request(request).ip == "203.0.113.5"


# --------------------------------------------------------------------------- the ASGI server


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def demo_web_server() -> Iterator[httpx.Client]:
    """The web server exactly as ``./dev demo`` starts it, on a free local port."""
    port = _free_port()
    proc = subprocess.Popen(
        web_server_argv("127.0.0.1", port),
        cwd=ROOT,
        env=child_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
    try:

        def answers() -> bool:
            assert proc.poll() is None, proc.stderr.read().decode()
            try:
                return client.get("/admin/login/").status_code == 200
            except httpx.TransportError:
                return False

        wait_until(answers, timeout=30)
        yield client
    finally:
        client.close()
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _post_login(client: httpx.Client, username: str, password: str, forwarded: str) -> int:
    client.cookies.clear()
    page = client.get("/admin/login/")
    token = page.cookies["csrftoken"]
    response = client.post(
        LOGIN,
        data={
            "username": username,
            "password": password,
            "next": "/admin/",
            "csrfmiddlewaretoken": token,
        },
        headers={"X-Forwarded-For": forwarded},
    )
    return response.status_code


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_demos_web_server_does_not_take_the_address_from_a_local_peers_header(demo_web_server):
    """uvicorn's default trusts X-Forwarded-For from 127.0.0.1: a local attacker rotating it
    got a fresh lock-out counter per request."""
    user = make_staff_user("operator")
    for n in range(settings.AXES_FAILURE_LIMIT):
        _post_login(demo_web_server, user.username, "wrong", f"203.0.113.{n + 1}")
    assert _post_login(demo_web_server, user.username, PASSWORD, "203.0.113.250") == 429
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"127.0.0.1"}

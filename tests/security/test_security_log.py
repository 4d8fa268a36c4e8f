"""The security log: logins, failures, lock-outs, logouts, permission
denials on the APIs and the admin, password / flag / role changes, each with the user, the
address and the request id, and nothing a person typed; a read-only console page for
viewers; an alert (dashboard and mail, throttled) on a burst of failed logins."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings
from django.contrib.auth.models import Group, User
from django.db import connection
from django.test import AsyncClient, Client

from sync.access import roles
from sync.models import SecurityEvent, SyncAlert
from tests.console.conftest import PASSWORD, ensure_role_groups, make_staff_user

pytestmark = pytest.mark.django_db

LOGIN = "/admin/login/?next=/admin/"
EMAIL = "someone.private@pii-canary.example"


def log_in(client: Client, username: str, password: str, request_id: str = ""):
    extra = {"HTTP_X_REQUEST_ID": request_id} if request_id else {}
    return client.post(
        LOGIN, {"username": username, "password": password, "next": "/admin/"}, **extra
    )


def events(kind: str) -> list[SecurityEvent]:
    return list(SecurityEvent.objects.filter(kind=kind).order_by("pk"))


def all_text() -> str:
    return " ".join(str(row) for row in SecurityEvent.objects.values_list())


def test_logins_failures_lockouts_and_logouts_are_recorded():
    user = make_staff_user("operator")
    client = Client()
    assert log_in(client, user.username, "wrong", request_id="req-fail-1").status_code == 200
    assert log_in(client, user.username, PASSWORD, request_id="req-ok-1").status_code == 302
    client.post("/admin/logout/")
    [failed] = events("login_failed")
    assert (failed.user, failed.username, failed.ip, failed.request_id, failed.path) == (
        user,
        user.username,
        "127.0.0.1",
        "req-fail-1",
        "/admin/login/",
    )
    [login] = events("login")
    assert (login.user, login.request_id) == (user, "req-ok-1")
    [logout] = events("logout")
    assert logout.user == user
    # A logout of nobody (another view calling logout() for an anonymous request).
    from django.contrib.auth import logout
    from django.contrib.auth.models import AnonymousUser
    from django.test import RequestFactory

    from sync.console.session_store import SessionStore

    anonymous = RequestFactory().post("/elsewhere/logout/")
    anonymous.user, anonymous.session = AnonymousUser(), SessionStore()
    logout(anonymous)
    assert len(events("logout")) == 1
    for _ in range(settings.AXES_FAILURE_LIMIT):
        log_in(client, user.username, "wrong")
    [lockout] = events("lockout")
    assert (lockout.user, lockout.ip) == (user, "127.0.0.1")
    assert lockout.details == {"failure_limit": settings.AXES_FAILURE_LIMIT}


def test_what_someone_typed_for_an_unknown_account_is_not_stored():
    """A login form's username for no account is often a password or an e-mail address."""
    client = Client()
    for typed in (EMAIL, "hunter2-my-password", "nul\x00byte"):
        log_in(client, typed, "wrong")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        log_in(client, EMAIL, "wrong")
    assert len(events("login_failed")) >= 3
    assert events("lockout")[0].details["unknown_username"] is True
    text = all_text()
    for secret in ("someone.private", "pii-canary", "hunter2", "wrong"):
        assert secret not in text
    assert {e.username for e in SecurityEvent.objects.all()} == {""}


def test_an_email_address_as_a_username_is_redacted():
    user = make_staff_user("viewer", username=EMAIL)
    log_in(Client(), EMAIL, "wrong")
    [failed] = events("login_failed")
    assert failed.user == user and EMAIL not in all_text()


def test_permission_denials_on_the_apis_and_the_admin_are_recorded():
    viewer, plain = make_staff_user("viewer"), make_staff_user("staff")
    client = Client()
    client.force_login(viewer)
    # A viewer starting a sync: refused (operators only).
    response = client.post(
        "/api/sync/manual",
        {"source": "buyers"},
        content_type="application/json",
        HTTP_X_REQUEST_ID="req-denied-1",
    )
    assert response.status_code == 403
    [denied] = events("denied")
    assert (denied.user, denied.status_code, denied.path, denied.request_id, denied.ip) == (
        viewer,
        403,
        "/api/sync/manual",
        "req-denied-1",
        "127.0.0.1",
    )
    assert denied.details == {"method": "POST"}
    # Anonymous writes on the console API; an anonymous read (a visitor, or a console tab
    # whose session ended, polling on) is not recorded.
    assert Client().get("/api/sync/status").status_code in (401, 403)
    assert len(events("denied")) == 1
    assert Client().post(
        "/api/sync/manual", {"source": "buyers"}, content_type="application/json"
    ).status_code in (401, 403)
    assert events("denied")[-1].user is None
    # Staff without a console role on an admin list, searching for an address: the path is
    # kept, the query string is not.
    other = Client()
    other.force_login(plain)
    assert other.get(f"/admin/sync/syncalert/?q={EMAIL}").status_code == 403
    assert events("denied")[-1].path == "/admin/sync/syncalert/"
    assert EMAIL not in all_text()
    # Public reads that succeed, and pages outside /api/ and /admin/, are not denials.
    Client().get("/api/parts")
    Client().get("/health/")
    assert len(events("denied")) == 3


def test_a_denial_that_cannot_be_recorded_still_answers_and_says_so(caplog):
    """A real PostgreSQL error on the insert (a trigger refusing rows): the 403 stands, the
    test's transaction stays usable, the log names the miss."""
    with connection.cursor() as cursor:
        cursor.execute("""
            CREATE FUNCTION refuse_security_event() RETURNS trigger AS $$
            BEGIN RAISE EXCEPTION 'refused by the test'; END $$ LANGUAGE plpgsql;
            CREATE TRIGGER refuse_security_event BEFORE INSERT ON sync_security_events
            FOR EACH ROW EXECUTE FUNCTION refuse_security_event();""")
    assert Client().post(
        "/api/sync/manual", {"source": "buyers"}, content_type="application/json"
    ).status_code in (401, 403)
    assert "could not be recorded" in caplog.text
    assert SecurityEvent.objects.count() == 0


def test_denials_and_expired_sessions_through_the_async_stack(settings):
    """Through Django's ASGI handler, as under uvicorn."""
    settings.SESSION_IDLE_TIMEOUT = 60
    client = AsyncClient()
    response = async_to_sync(client.post)(
        "/api/sync/manual", {"source": "buyers"}, content_type="application/json"
    )
    assert response.status_code in (401, 403)
    assert events("denied")[0].path == "/api/sync/manual"
    user = make_staff_user("viewer")
    sync_client = Client()
    sync_client.force_login(user)
    session = sync_client.session
    session["_security_seen"] -= 120
    session.save()
    client.cookies = sync_client.cookies
    assert async_to_sync(client.get)("/api/sync/status").status_code in (401, 403)
    assert events("session_expired")[0].user == user
    assert async_to_sync(AsyncClient().get)("/api/parts").status_code == 200
    # The write's refusal only: the expired session's read was anonymous.
    assert len(events("denied")) == 1


def test_a_session_cookie_of_no_session_is_anonymous_and_unharmed():
    client = Client()
    client.cookies[settings.SESSION_COOKIE_NAME] = "no-such-session"
    assert client.get("/admin/").status_code == 302
    assert not events("session_expired")


def test_role_and_staff_flag_changes_are_recorded():
    ensure_role_groups()
    operator_group = Group.objects.get(name=roles.OPERATOR)
    viewer_group = Group.objects.get(name=roles.VIEWER)
    user = User.objects.create_user("newcomer", password=PASSWORD)
    assert not SecurityEvent.objects.exists()  # a plain account: nothing to say
    user.is_staff = True
    user.save()
    user.groups.add(viewer_group)
    operator_group.user_set.add(user)  # from the group's side
    user.groups.remove(viewer_group)
    user.groups.clear()
    user.is_superuser = True
    user.save()
    rows = list(
        SecurityEvent.objects.filter(user=user).order_by("pk").values_list("kind", "details")
    )
    assert rows == [
        ("staff_granted", {"flag": "is_staff"}),
        ("role_added", {"group": roles.VIEWER}),
        ("role_added", {"group": roles.OPERATOR}),
        ("role_removed", {"group": roles.VIEWER}),
        ("role_removed", {"group": roles.OPERATOR}),
        ("staff_granted", {"flag": "is_superuser"}),
    ]
    assert not SecurityEvent.objects.filter(kind="password_changed").exists()


def test_a_user_made_staff_in_the_admin_is_recorded_with_the_admin_as_actor():
    admin_user = make_staff_user("superuser", username="the-admin")
    client = Client()
    client.force_login(admin_user)
    response = client.post(
        "/admin/auth/user/add/",
        {
            "username": "fresh-operator",
            "password1": "a-new-password-8812",
            "password2": "a-new-password-8812",
            "usable_password": "true",
        },
    )
    assert response.status_code == 302, response.content[:2000]
    fresh = User.objects.get(username="fresh-operator")
    ensure_role_groups()
    operators = Group.objects.get(name=roles.OPERATOR)
    response = client.post(
        f"/admin/auth/user/{fresh.pk}/change/",
        {
            "username": "fresh-operator",
            "is_active": "on",
            "is_staff": "on",
            "groups": [operators.pk],
            "last_login_0": "",
            "last_login_1": "",
            "date_joined_0": "2026-12-01",
            "date_joined_1": "10:00:00",
        },
    )
    assert response.status_code == 302, response.content[:3000]
    rows = list(SecurityEvent.objects.filter(user=fresh).values_list("kind", "actor"))
    assert ("staff_granted", "the-admin") in rows
    assert ("role_added", "the-admin") in rows


def test_the_console_page_is_read_only_for_viewers_and_closed_to_others():
    viewer, plain = make_staff_user("viewer"), make_staff_user("staff")
    log_in(Client(), viewer.username, "wrong")
    client = Client()
    client.force_login(viewer)
    page = client.get("/admin/sync/securityevent/")
    assert page.status_code == 200
    assert "Login failed" in page.content.decode()
    event = SecurityEvent.objects.filter(kind="login_failed").get()
    assert client.get(f"/admin/sync/securityevent/{event.pk}/change/").status_code == 200
    assert client.get("/admin/sync/securityevent/add/").status_code == 403
    assert (
        client.post(f"/admin/sync/securityevent/{event.pk}/delete/", {"post": "yes"}).status_code
        == 403
    )
    assert SecurityEvent.objects.filter(pk=event.pk).exists()
    superuser = Client()
    superuser.force_login(make_staff_user("superuser"))
    assert superuser.get("/admin/sync/securityevent/add/").status_code == 403
    other = Client()
    other.force_login(plain)
    assert other.get("/admin/sync/securityevent/").status_code == 403


def test_a_burst_of_failed_logins_raises_one_alert_and_one_mail(
    settings, mailoutbox, django_capture_on_commit_callbacks
):
    settings.SECURITY_ALERT_LOGIN_FAILURES = 4
    settings.SECURITY_ALERT_WINDOW_MINUTES = 10
    settings.SYNC_ALERT_RECIPIENTS = ["ops@staff.example"]
    # A spray: a different account from a different address each time (no lock-out fires).
    for n in range(3):
        log_in(Client(REMOTE_ADDR=f"198.51.100.{n + 1}"), f"guess{n}", "wrong")
    assert not SyncAlert.objects.filter(alert_type="login_failures").exists()
    with django_capture_on_commit_callbacks(execute=True):  # the mail goes after commit
        for n in range(3, 8):
            log_in(Client(REMOTE_ADDR=f"198.51.100.{n + 1}"), f"guess{n}", "wrong")
    alert = SyncAlert.objects.get(alert_type="login_failures")
    assert alert.severity == "critical" and alert.count == 1  # one per window, not per try
    # The open alert shows the latest figures of the window.
    assert alert.context["failures"] == 8 and alert.context["addresses"] == 8
    assert "8 failed logins within 10 minutes" in alert.message
    assert len(mailoutbox) == 1
    assert "login_failures" in mailoutbox[0].subject
    viewer = Client()
    viewer.force_login(make_staff_user("viewer"))
    assert "Login failures" in viewer.get("/admin/").content.decode()  # the dashboard


def test_a_login_failure_from_another_backend_with_no_username_is_recorded_without_one():
    """Backends other than the login form may report failures with no (or odd) username."""
    from django.contrib.auth.signals import user_login_failed

    for username in (None, "", 42):
        user_login_failed.send(sender=__name__, credentials={"username": username})
    assert [(e.user, e.username, e.ip) for e in events("login_failed")] == [(None, "", None)] * 3


def test_loading_users_from_a_fixture_records_nothing():
    """loaddata saves raw rows: not a change someone made."""
    from django.core import serializers

    user = make_staff_user("staff")  # no groups: their restoring is a change of roles
    SecurityEvent.objects.all().delete()
    dumped = serializers.serialize("json", [user])
    user.delete()
    for obj in serializers.deserialize("json", dumped):
        obj.save()
    assert User.objects.filter(username=user.username).exists()
    assert not SecurityEvent.objects.exists()


def test_the_middleware_in_front_of_an_async_layer(settings):
    """The project's chain below these middlewares is sync today (the API guard); in front of
    an async layer they run their async form: the same session limit, the same record."""
    from asgiref.sync import iscoroutinefunction
    from django.contrib.auth.middleware import AuthenticationMiddleware
    from django.contrib.sessions.middleware import SessionMiddleware
    from django.http import HttpResponse
    from django.test import RequestFactory

    from sync.console.security import SEEN, SecurityLogMiddleware, SessionLifetimeMiddleware

    seen_by_view = []

    async def view(request):
        seen_by_view.append(await request.auser())
        return HttpResponse(status=403)

    chain = SessionMiddleware(
        AuthenticationMiddleware(SessionLifetimeMiddleware(SecurityLogMiddleware(view)))
    )
    assert iscoroutinefunction(chain)
    settings.SESSION_IDLE_TIMEOUT = 60
    user = make_staff_user("viewer")
    client = Client()
    client.force_login(user)
    session = client.session
    session[SEEN] -= 120
    session.save()
    request = RequestFactory().post("/api/sync/manual")
    request.COOKIES[settings.SESSION_COOKIE_NAME] = session.session_key
    assert async_to_sync(chain)(request).status_code == 403
    assert not seen_by_view[0].is_authenticated
    assert events("session_expired")[0].user == user
    assert events("denied")[0].path == "/api/sync/manual"
    request = RequestFactory().get("/elsewhere/")  # no session cookie, not logged
    assert async_to_sync(chain)(request).status_code == 403
    assert len(events("denied")) == 1

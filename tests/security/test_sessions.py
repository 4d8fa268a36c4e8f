"""Staff sessions end: after the idle timeout, after the absolute
lifetime, and at once when the user's password changes (by an admin too), they are
deactivated or lose the staff flag. Time is moved by rewriting the session's stamps, never
by sleeping."""

from __future__ import annotations

import time

import pytest
from django.contrib.auth.models import User
from django.test import Client

from sync.console.security import SEEN, STARTED
from sync.models import SecurityEvent, UserSession
from tests.console.conftest import PASSWORD, make_staff_user

pytestmark = pytest.mark.django_db

HOME = "/admin/"
API = "/api/sync/status"


def logged_in(user: User) -> Client:
    client = Client()
    assert (
        client.post(
            "/admin/login/", {"username": user.username, "password": PASSWORD, "next": HOME}
        ).status_code
        == 302
    )
    return client


def shift(client: Client, **seconds_ago: float) -> None:
    """Move the session's stamps into the past (``started=…``, ``seen=…`` seconds ago)."""
    session = client.session
    now = time.time()
    for name, key in (("started", STARTED), ("seen", SEEN)):
        if name in seconds_ago:
            session[key] = now - seconds_ago[name]
    session.save()


def is_logged_in(client: Client) -> bool:
    response = client.get(HOME)
    if response.status_code == 302:
        assert response["Location"].startswith("/admin/login/")
        return False
    assert response.status_code == 200
    return True


def sessions_of(user: User) -> int:
    return UserSession.objects.filter(user_id=user.pk).count()


def test_a_session_idle_longer_than_the_timeout_is_logged_out(settings):
    settings.SESSION_IDLE_TIMEOUT = 600
    user = make_staff_user("viewer")
    client = logged_in(user)
    shift(client, seen=599)
    assert is_logged_in(client)  # within the timeout: the request counts as activity …
    assert time.time() - client.session[SEEN] < 5  # … and moved the stamp
    shift(client, seen=599)
    # The console's polling (API reads) is no activity: an unattended dashboard goes idle.
    assert client.get(API).status_code == 200
    assert time.time() - client.session[SEEN] > 590
    shift(client, seen=601)
    assert not is_logged_in(client)
    assert sessions_of(user) == 0
    event = SecurityEvent.objects.get(kind="session_expired")
    assert (event.user, event.details, event.ip) == (user, {"reason": "idle"}, "127.0.0.1")
    # The JSON API answers the same session as anonymous too; an API write is activity.
    client = logged_in(user)
    shift(client, seen=601)
    assert client.get(API).status_code in (401, 403)
    client = logged_in(user)
    shift(client, seen=300)
    client.post("/api/sync/manual", {"source": "buyers"}, content_type="application/json")
    assert time.time() - client.session[SEEN] < 5


def test_an_active_session_ends_at_its_absolute_lifetime(settings):
    settings.SESSION_ABSOLUTE_LIFETIME = 3600
    user = make_staff_user("viewer")
    client = logged_in(user)
    shift(client, started=3599, seen=1)
    assert is_logged_in(client)
    shift(client, started=3601, seen=1)  # busy until a second ago, but logged in too long
    assert not is_logged_in(client)
    assert SecurityEvent.objects.get(kind="session_expired").details == {"reason": "absolute"}


def test_the_defaults_are_thirty_minutes_idle_and_twelve_hours_in_all(settings):
    assert settings.SESSION_IDLE_TIMEOUT == 30 * 60
    assert settings.SESSION_ABSOLUTE_LIFETIME == 12 * 3600
    assert settings.SESSION_COOKIE_AGE <= settings.SESSION_ABSOLUTE_LIFETIME


def test_neither_the_row_nor_the_cookie_outlives_the_absolute_lifetime(settings):
    """Activity writes the session again; its expiry must stay where the login put it."""
    settings.SESSION_ABSOLUTE_LIFETIME = 3600
    user = make_staff_user("viewer")
    client = logged_in(user)
    [row] = UserSession.objects.filter(user_id=user.pk)
    assert abs(row.expire_date.timestamp() - (time.time() + 3600)) < 30
    shift(client, started=1800, seen=900)  # half-way, and a stamp due
    response = client.get(HOME)
    assert response.status_code == 200
    [again] = UserSession.objects.filter(user_id=user.pk)
    assert client.session[SEEN] > time.time() - 30  # the stamp was written …
    assert again.expire_date == row.expire_date  # … and the expiry did not move
    assert response.cookies[settings.SESSION_COOKIE_NAME]["max-age"] <= 3600


def test_a_session_without_stamps_starts_its_clock_at_the_next_request():
    """Sessions from before the limits (or stamps someone removed) are not immortal."""
    user = make_staff_user("viewer")
    client = logged_in(user)
    session = client.session
    del session[STARTED]
    session[SEEN] = "garbage"
    session.save()
    assert is_logged_in(client)
    assert time.time() - client.session[STARTED] < 5


def test_deactivation_ends_an_active_session_at_once():
    user = make_staff_user("operator")
    first, second = logged_in(user), logged_in(user)
    assert sessions_of(user) == 2
    user.is_active = False
    user.save()
    assert sessions_of(user) == 0
    # Reactivated, the old sessions stay ended: the person logs in again.
    user.is_active = True
    user.save()
    assert not is_logged_in(first)
    assert not is_logged_in(second)
    kinds = list(
        SecurityEvent.objects.filter(user=user).order_by("pk").values_list("kind", flat=True)
    )
    assert kinds[-2:] == ["deactivated", "activated"]


def test_a_password_changed_by_an_admin_ends_the_other_users_sessions():
    admin_user = make_staff_user("superuser", username="the-admin")
    target = make_staff_user("operator")
    admin, victim = logged_in(admin_user), logged_in(target)
    response = admin.post(
        f"/admin/auth/user/{target.pk}/password/",
        {
            "password1": "a-new-password-8812",
            "password2": "a-new-password-8812",
            "usable_password": "true",
        },
    )
    assert response.status_code == 302, response.content[:2000]
    assert sessions_of(target) == 0
    assert not is_logged_in(victim)
    assert is_logged_in(admin)  # the admin's own session stays
    event = SecurityEvent.objects.get(kind="password_changed")
    assert (event.user, event.actor, event.ip) == (target, "the-admin", "127.0.0.1")
    assert event.request_id  # the admin's request


def test_a_users_own_password_change_keeps_that_session_and_ends_the_others():
    user = make_staff_user("operator")
    here, elsewhere = logged_in(user), logged_in(user)
    response = here.post(
        "/admin/password_change/",
        {
            "old_password": PASSWORD,
            "new_password1": "a-new-password-8812",
            "new_password2": "a-new-password-8812",
        },
    )
    assert response.status_code == 302, response.content[:2000]
    assert is_logged_in(here)
    assert not is_logged_in(elsewhere)
    assert sessions_of(user) == 1
    assert SecurityEvent.objects.get(kind="password_changed").actor == ""  # themselves


def test_a_removed_staff_flag_ends_the_sessions_for_the_admin_and_the_apis():
    user = make_staff_user("operator")
    client = logged_in(user)
    assert client.get(API).status_code == 200
    user.is_staff = False
    user.save()
    assert client.get(API).status_code in (401, 403)
    assert not is_logged_in(client)
    assert SecurityEvent.objects.filter(user=user, kind="staff_revoked").exists()


def test_saving_a_user_for_the_login_stamp_costs_no_comparison(django_assert_num_queries):
    """``update_last_login`` saves with update_fields=["last_login"]: no extra read."""
    user = make_staff_user("viewer")
    with django_assert_num_queries(1):
        user.save(update_fields=["last_login"])


def test_a_session_saved_by_async_code_is_indexed_by_its_user_too():
    from asgiref.sync import async_to_sync
    from django.contrib.auth import SESSION_KEY

    from sync.console.session_store import SessionStore

    user = make_staff_user("viewer")
    store = SessionStore()
    store[SESSION_KEY] = str(user.pk)
    async_to_sync(store.asave)()
    assert sessions_of(user) == 1


def test_the_daily_retention_task_deletes_expired_sessions(settings, tmp_path):
    import datetime

    from django.utils import timezone

    from sync.tasks import archive_logs

    settings.SYNC_ARCHIVE_DIR = str(tmp_path)
    user = make_staff_user("viewer")
    client = logged_in(user)
    UserSession.objects.create(
        session_key="x" * 32,
        session_data="",
        user_id=user.pk,
        expire_date=timezone.now() - datetime.timedelta(seconds=1),
    )
    archive_logs()  # the task's body, here
    assert UserSession.objects.filter(user_id=user.pk).count() == 1  # the live one
    assert is_logged_in(client)


def test_an_expired_session_is_rate_limited_as_anonymous(settings):
    """The session limits run before the per-role rate limits: an idle viewer's next request
    spends the address's anonymous budget, not the viewer's."""
    from sync.console import ratelimit

    settings.API_RATELIMIT_ENABLED = True
    settings.API_RATELIMIT_ANONYMOUS = "50/minute"
    settings.API_RATELIMIT_VIEWER = "30/minute"
    ratelimit.fail_open.__init__()
    try:
        client = logged_in(make_staff_user("viewer"))
        assert client.get("/api/parts")["RateLimit-Limit"] == "30"
        shift(client, seen=settings.SESSION_IDLE_TIMEOUT + 1)
        assert client.get("/api/parts")["RateLimit-Limit"] == "50"
    finally:
        ratelimit.fail_open.__init__()

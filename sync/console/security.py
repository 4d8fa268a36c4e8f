"""Session lifetime and the security log's request side.

* ``SessionLifetimeMiddleware`` ends a logged-in session ``SESSION_IDLE_TIMEOUT`` seconds
  after its last request and ``SESSION_ABSOLUTE_LIFETIME`` seconds after its login, whatever
  the activity; the request that finds it expired already runs as anonymous.
* ``SecurityLogMiddleware`` records every 401/403 answer under ``/api/`` and ``/admin/`` (a
  permission denial, a CSRF refusal) and makes the request the actor of changes to users
  that happen while it runs.
* Receivers (``connect``) record logins, logouts, login failures, lock-outs, password,
  active-flag, staff-flag and group changes; a password change, a deactivation or a removed
  staff flag deletes every stored session of that user (the session store indexes them).

Everything goes through ``sync.ops.security_log.security_event_record``: account ids and
usernames, addresses by the project's rule (``sync.access.client_ip``), request ids, paths
without query strings; never what someone typed into a login form for an unknown account.
"""

from __future__ import annotations

import contextvars
import datetime
import logging
import time
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser, Group
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db import DatabaseError, transaction
from django.db.models.signals import m2m_changed, post_save, pre_save
from django.http import HttpRequest, HttpResponse

from sync.access.client_ip import client_ip
from sync.console.session_store import user_sessions_end
from sync.models import SecurityEvent
from sync.ops.security_log import security_event_record

logger = logging.getLogger(__name__)

Kind = SecurityEvent.Kind
STARTED = "_security_started"  # session key: epoch seconds of the login
SEEN = "_security_seen"  # session key: epoch seconds of the last request (coarse, see _touch)
LOGGED_PATHS = ("/api/", "/admin/")
# The request being served, so a change to a user made by it names its actor and address.
current_request: contextvars.ContextVar[HttpRequest | None] = contextvars.ContextVar(
    "security_request", default=None
)
# Flags whose change is a security event; the first two end the user's sessions when lost.
_FLAGS = ("is_active", "is_staff", "is_superuser")
_WATCHED = {"password", *_FLAGS}


def _request_context(request: HttpRequest | None) -> dict[str, Any]:
    if request is None:
        return {}
    return {
        "ip": client_ip(request),
        "request_id": getattr(request, "request_id", ""),
        "path": request.path,
    }


def _actor(request: HttpRequest | None, subject: Any) -> str:
    """Who made a change: the request's user, unless it is the subject themselves."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or user.pk == subject.pk:
        return ""
    return user.get_username()


class _Middleware:
    """Sync and async capable: the async path runs the (database) work in a thread."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response) -> None:
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)  # type: ignore[type-var]  # callable: subclasses have __call__


class SessionLifetimeMiddleware(_Middleware):
    def __call__(self, request: HttpRequest):
        if iscoroutinefunction(self):
            return self._acall(request)
        if settings.SESSION_COOKIE_NAME in request.COOKIES:
            session_check(request)
        return self.get_response(request)

    async def _acall(self, request: HttpRequest):
        if settings.SESSION_COOKIE_NAME in request.COOKIES:
            await sync_to_async(session_check)(request)
        return await self.get_response(request)


def _touch_interval() -> float:
    # NOTE: the last-activity stamp is written at most this often, not on every request (a
    # session write each time); the idle timeout is exact to within this much.
    return min(60.0, settings.SESSION_IDLE_TIMEOUT / 10)


def session_check(request: HttpRequest) -> None:
    """End the request's session if it is idle or too old (module docstring)."""
    user = request.user
    if not user.is_authenticated:
        return
    now = time.time()
    session = request.session
    started, seen = session.get(STARTED), session.get(SEEN)
    if not isinstance(started, int | float) or not isinstance(seen, int | float):
        # A session from before these limits (or a tampered stamp): its clock starts now.
        session[STARTED] = session[SEEN] = now
        return
    reason = (
        "absolute"
        if now - started > settings.SESSION_ABSOLUTE_LIFETIME
        else "idle"
        if now - seen > settings.SESSION_IDLE_TIMEOUT
        else ""
    )
    if reason:
        security_event_record(
            kind=Kind.SESSION_EXPIRED,
            user=user,
            details={"reason": reason},
            **_request_context(request),
        )
        # NOTE: not logout(): that would record a logout the user never asked for.
        session.flush()
        request.user = AnonymousUser()
        return
    if now - seen >= _touch_interval() and not _background_read(request):
        session[SEEN] = now


def _background_read(request: HttpRequest) -> bool:
    """A read of the JSON APIs: the console's own polling (dashboard, progress) and event
    streams. NOTE: not activity: an unattended open dashboard must still go idle."""
    return request.path.startswith("/api/") and request.method in ("GET", "HEAD")


class SecurityLogMiddleware(_Middleware):
    def __call__(self, request: HttpRequest):
        if iscoroutinefunction(self):
            return self._acall(request)
        token = current_request.set(request)
        try:
            response = self.get_response(request)
        finally:
            current_request.reset(token)
        if _is_denial(request, response):
            denial_record(request, response)
        return response

    async def _acall(self, request: HttpRequest):
        token = current_request.set(request)
        try:
            response = await self.get_response(request)
        finally:
            current_request.reset(token)
        if _is_denial(request, response):
            await sync_to_async(denial_record)(request, response)
        return response


def _is_denial(request: HttpRequest, response: HttpResponse) -> bool:
    return response.status_code in (401, 403) and request.path.startswith(LOGGED_PATHS)


def denial_record(request: HttpRequest, response: HttpResponse) -> None:
    user = getattr(request, "user", None)
    user = user if user is not None and user.is_authenticated else None
    if user is None and request.method in ("GET", "HEAD"):
        # NOTE: a read by nobody logged in (a visitor, a console tab whose session ended and
        # keeps polling) is no attempt at anything: recorded, it would bury the rest. Every
        # refusal of a logged-in user, and every anonymous write, is kept.
        return
    try:
        # A savepoint: a failed insert must not poison a transaction the caller still uses.
        with transaction.atomic():
            security_event_record(
                kind=Kind.DENIED,
                user=user,
                status_code=response.status_code,
                details={"method": request.method},
                **_request_context(request),
            )
    except DatabaseError:
        # The answer stands; the operator learns from the log that the row is missing.
        logger.exception(
            "security log: the denial of %s %s could not be recorded", request.method, request.path
        )


# --------------------------------------------------------------------------- receivers


def _logged_in(sender, request: HttpRequest, user: Any, **kwargs: Any) -> None:
    now = time.time()
    request.session[STARTED] = request.session[SEEN] = now
    # NOTE: a fixed moment, not an age: an age would move on with every save of the session
    # (each activity stamp), and the row and the cookie would outlive the absolute limit.
    request.session.set_expiry(
        datetime.datetime.fromtimestamp(now + settings.SESSION_ABSOLUTE_LIFETIME, tz=datetime.UTC)
    )
    security_event_record(kind=Kind.LOGIN, user=user, **_request_context(request))


def _logged_out(sender, request: HttpRequest, user: Any, **kwargs: Any) -> None:
    if user is not None:
        security_event_record(kind=Kind.LOGOUT, user=user, **_request_context(request))


def _known_user(username: object) -> Any:
    """The account a login form named, or None (a typo, often a password: never stored)."""
    if not isinstance(username, str) or not username or "\x00" in username:
        return None
    model = get_user_model()
    return model._default_manager.filter(**{model.USERNAME_FIELD: username[:150]}).first()


def _login_failed(
    sender, credentials: dict, request: HttpRequest | None = None, **kwargs: Any
) -> None:
    user = _known_user(credentials.get(get_user_model().USERNAME_FIELD))
    security_event_record(
        kind=Kind.LOGIN_FAILED,
        user=user,
        details={} if user else {"unknown_username": True},
        **_request_context(request),
    )


def _locked_out(
    sender, request: HttpRequest | None = None, username: str | None = None, **kwargs: Any
) -> None:
    user = _known_user(username)
    security_event_record(
        kind=Kind.LOCKOUT,
        user=user,
        details={
            "failure_limit": settings.AXES_FAILURE_LIMIT,
            **({} if user else {"unknown_username": True}),
        },
        **_request_context(request),
    )


def _user_before(
    sender, instance: Any, raw: bool = False, update_fields=None, **kwargs: Any
) -> None:
    instance._security_before = None
    if (
        raw
        or instance.pk is None
        or (update_fields is not None and not _WATCHED & set(update_fields))
    ):
        return  # e.g. the login's last_login update: nothing to compare
    instance._security_before = (
        sender._default_manager.filter(pk=instance.pk).values("password", *_FLAGS).first()
    )


def _user_saved(sender, instance: Any, created: bool, raw: bool = False, **kwargs: Any) -> None:
    if raw:
        return
    before = getattr(instance, "_security_before", None)
    instance._security_before = None
    if created:
        before = {
            "password": instance.password,
            "is_active": True,
            "is_staff": False,
            "is_superuser": False,
        }
    if before is None:
        return
    request = current_request.get()
    common = {"user": instance, "actor": _actor(request, instance), **_request_context(request)}
    end_sessions = False
    if not created and before["password"] != instance.password:
        security_event_record(kind=Kind.PASSWORD_CHANGED, **common)
        end_sessions = True
    for flag in _FLAGS:
        old, new = bool(before[flag]), bool(getattr(instance, flag))
        if old == new:
            continue
        if flag == "is_active":
            kind = Kind.ACTIVATED if new else Kind.DEACTIVATED
        else:
            kind = Kind.STAFF_GRANTED if new else Kind.STAFF_REVOKED
        security_event_record(kind=kind, details={"flag": flag}, **common)
        end_sessions = end_sessions or (not new and flag in ("is_active", "is_staff"))
    if end_sessions:
        ended = user_sessions_end(user_id=instance.pk)
        logger.info("ended %s session(s) of user %s", ended, instance.pk)


def _groups_changed(
    sender, instance: Any, action: str, reverse: bool, pk_set: set | None, **kwargs: Any
) -> None:
    """``user.groups`` changed from either side (``user.groups.add`` or
    ``group.user_set.add``); a clear is recorded from what it is about to remove."""
    if action == "pre_clear":
        instance._security_cleared = set(
            (instance.user_set if reverse else instance.groups).values_list("pk", flat=True)
        )
        return
    if action not in ("post_add", "post_remove", "post_clear"):
        return
    if action == "post_clear":
        pk_set = getattr(instance, "_security_cleared", set())
    pks = pk_set or set()  # Django sends a set with every action but a clear
    kind = Kind.ROLE_ADDED if action == "post_add" else Kind.ROLE_REMOVED
    model = get_user_model()
    if reverse:  # instance is a group, pk_set users
        pairs = [(user, instance) for user in model._default_manager.filter(pk__in=pks)]
    else:
        pairs = [(instance, group) for group in Group.objects.filter(pk__in=pks)]
    request = current_request.get()
    for user, group in pairs:
        security_event_record(
            kind=kind,
            user=user,
            actor=_actor(request, user),
            details={"group": group.name},
            **_request_context(request),
        )


def connect() -> None:
    """Called from ``SyncConfig.ready``."""
    from axes.signals import user_locked_out

    user_model = get_user_model()
    user_logged_in.connect(_logged_in, dispatch_uid="security-login")
    user_logged_out.connect(_logged_out, dispatch_uid="security-logout")
    user_login_failed.connect(_login_failed, dispatch_uid="security-login-failed")
    user_locked_out.connect(_locked_out, dispatch_uid="security-locked-out")
    pre_save.connect(_user_before, sender=user_model, dispatch_uid="security-user-before")
    post_save.connect(_user_saved, sender=user_model, dispatch_uid="security-user-saved")
    m2m_changed.connect(
        _groups_changed, sender=user_model.groups.through, dispatch_uid="security-user-groups"
    )

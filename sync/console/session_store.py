"""``SESSION_ENGINE``: Django's database sessions, with the user's id in an indexed column.

Django's own table keeps the user id inside the encoded session data, so "end every session of
this user" would decode every row. Ours (``sync.models.UserSession``, ``sync_sessions``) also
stores it in ``user_id``, written on every save, and ``user_sessions_end`` deletes by it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib.auth import SESSION_KEY
from django.contrib.sessions.backends.db import SessionStore as DatabaseSessionStore

if TYPE_CHECKING:
    from sync.models import UserSession

    # django-stubs' store is generic in its model; Django's class takes no arguments.
    _Store = DatabaseSessionStore[UserSession]
else:
    _Store = DatabaseSessionStore


def _user_id(data: dict[str, Any]) -> int | None:
    try:
        return int(data[SESSION_KEY])
    except (KeyError, TypeError, ValueError):
        return None


class SessionStore(_Store):
    @classmethod
    def get_model_class(cls) -> type[UserSession]:
        from sync.models import UserSession  # NOTE: the engine is imported before the apps

        return UserSession

    def create_model_instance(self, data: dict[str, Any]) -> UserSession:
        obj = super().create_model_instance(data)
        obj.user_id = _user_id(data)
        return obj

    async def acreate_model_instance(self, data: dict[str, Any]) -> UserSession:
        obj = await super().acreate_model_instance(data)
        obj.user_id = _user_id(data)
        return obj


def user_sessions_end(*, user_id: int) -> int:
    """Delete every stored session of the user: their next request is anonymous. Returns
    how many were ended."""
    deleted, _ = SessionStore.get_model_class().objects.filter(user_id=user_id).delete()
    return deleted

"""Login throttling on the admin login (django-axes): AXES_FAILURE_LIMIT wrong passwords lock
the username out at that address, even with the right password, until the cool-off (other
users at the address, and forged X-Forwarded-For: tests/security/test_lockout.py)."""

from __future__ import annotations

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.test import Client

from tests.console.conftest import PASSWORD

pytestmark = pytest.mark.django_db

LOGIN = "/admin/login/?next=/admin/"


def log_in(client: Client, username: str, password: str):
    return client.post(LOGIN, {"username": username, "password": password, "next": "/admin/"})


def test_the_admin_login_locks_out_after_the_failure_limit(operator):
    client = Client()
    limit = settings.AXES_FAILURE_LIMIT
    assert limit >= 2
    for _ in range(limit - 1):
        response = log_in(client, operator.username, "wrong")
        assert response.status_code == 200  # the form again, with its error
        assert "Please enter the correct username and password" in response.content.decode()
    locked = log_in(client, operator.username, "wrong")  # the limit-th failure
    assert locked.status_code == 429
    assert AccessAttempt.objects.get(username=operator.username).failures_since_start == limit
    # Locked: the right password is refused too, and no session is created.
    refused = log_in(Client(), operator.username, PASSWORD)
    assert refused.status_code == 429
    assert "_auth_user_id" not in refused.wsgi_request.session


def test_a_good_login_below_the_limit_resets_the_count(viewer):
    client = Client()
    log_in(client, viewer.username, "wrong")
    response = log_in(client, viewer.username, PASSWORD)
    assert response.status_code == 302 and response["Location"] == "/admin/"
    assert not AccessAttempt.objects.filter(username=viewer.username).exists()

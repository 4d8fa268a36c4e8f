"""Schemathesis against /api/openapi.json, the document the code generates: generated
requests to every public and staff operation (with an operator's session and CSRF token)
never get a 5xx, and every response matches its documented status, content type and schema.

``/api/events`` is left out: it streams until the client goes away (tests/catalog/test_sse.py
covers it from a real ASGI server)."""

from __future__ import annotations

import pytest
import schemathesis
from django.utils.crypto import get_random_string
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from config.wsgi import application

# Real commits: the WSGI handler closes the connection after each request (request_finished).
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
EXAMPLES = 30


def test_every_operation_conforms_to_the_openapi_document(make_part, operator_client) -> None:
    part = make_part()
    csrf = get_random_string(32)
    session = operator_client.cookies["sessionid"].value
    # NOTE: Accept-Encoding: identity: schemathesis offers gzip by default, and its WSGI
    # client does not decode what it offered (tests/catalog/test_http_hygiene.py does).
    operator = {
        "headers": {"X-CSRFToken": csrf, "Accept-Encoding": "identity"},
        "cookies": {"sessionid": session, "csrftoken": csrf},
    }
    # NOTE: explicit empty cookies: the WSGI client would otherwise keep the operator's
    anonymous = {
        "headers": {"Accept-Encoding": "identity"},
        "cookies": {"sessionid": "", "csrftoken": ""},
    }
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", application)
    operations = [result.ok() for result in schema.get_all_operations()]
    checked, statuses = [], set()
    for operation in operations:
        if operation.path == "/api/events":
            continue

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        def conforms(case) -> None:
            # Half the cases name a real part, so the 200 paths are exercised too.
            if case.path_parameters and case.path_parameters.get("part_id", 1) % 2 == 0:
                case.path_parameters["part_id"] = part.pk
            for credentials in (operator, anonymous):
                response = case.call(**credentials)
                case.validate_response(response, checks=CHECKS)
                statuses.add(response.status_code)

        conforms()
        checked.append(f"{operation.method.upper()} {operation.path}")
    assert len(checked) == 10, checked
    # the runs reached past authentication and validation, into the operations themselves
    assert {200, 401, 404, 409, 422} <= statuses, statuses

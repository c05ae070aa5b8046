"""Property-based checks of every operation in the live OpenAPI schema (/api/schema/), with
schemathesis: generated requests, valid and not, must never get a server error, and every answer
must match what the schema documents for its status. Each operation runs twice per example, as
a source's secret key (Langfuse's Basic pair on /api/public/) and as a staff login with its CSRF
token, so the authenticated paths are exercised, not only their 401s.

Bounded: SCHEMATHESIS_MAX_EXAMPLES examples per operation (default 4) keep the whole module to a
few minutes on one core."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "4"))
CSRF_TOKEN = "schemathesisschemathesisschemat0"  # 32 letters/digits: a valid unmasked token


# Loaded at collection (the schema needs no database): one test per operation.
schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application())


@pytest.fixture
def credentials(db: Any) -> Iterator[dict[str, dict[str, str]]]:
    """Headers for the two callers: a source's secret key, and a logged-in superuser. The WSGI
    app closes the database connection after each request; in a test (as Django's own test
    client does) it must stay open, inside the test's transaction."""
    from django.contrib.auth import get_user_model
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections
    from django.test import Client

    from apps.sources.services import source_create

    _, secret, publishable = source_create(name="schemathesis", allowed_origins=[])
    user = get_user_model().objects.create_superuser("st-root", "root@example.org", "pw-123456")
    client = Client()
    client.force_login(user)
    session = client.cookies["sessionid"].value
    basic = base64.b64encode(f"{publishable.raw}:{secret.raw}".encode()).decode()
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield {
        "key": {"Authorization": f"Bearer {secret.raw}"},
        "basic": {"Authorization": f"Basic {basic}"},
        # An empty Authorization: schemathesis adds a generated one otherwise (the schema's
        # bearer scheme), and a key, even a wrong one, is tried before the session.
        "staff": {"X-CSRFToken": CSRF_TOKEN, "Authorization": ""},
        "staff_cookies": {"sessionid": session, "csrftoken": CSRF_TOKEN},
    }
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
@pytest.mark.slow
def test_every_operation_answers_without_a_server_error_and_as_documented(
    case: Any, credentials: dict[str, dict[str, str]]
) -> None:
    keyed = "basic" if case.path.startswith("/api/public/") else "key"
    for caller in (keyed, "staff"):
        # The generated case may carry an Authorization header of its own (the schema's
        # security scheme): the staff caller goes by its session alone.
        generated = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
        headers = {**generated, **credentials[caller]}
        cookies = credentials["staff_cookies"] if caller == "staff" else None
        case.call_and_validate(headers=headers, cookies=cookies, checks=CHECKS)

"""Schemathesis against the app's own OpenAPI schema: no input makes a server error.

Runs in-process through the WSGI app as the bravo service (token), as an admin
session (so the admin-only operations reach their input checks too) and
without credentials.
"""

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.utils.crypto import get_random_string
from hypothesis import HealthCheck, settings
from rest_framework.test import APIClient
from schemathesis.checks import not_a_server_error

from jobs.models import Job
from rendermanager.wsgi import application
from tests.api_fixtures import api_test_settings  # noqa: F401  (autouse)

FUZZ = settings(max_examples=30, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))

# Loaded at import: schemathesis' lazy fixture loader does not work with pytest 9.
# Serving the schema needs no database. /api/system is left out: as an admin its
# operations really run (update, emergency stop, restart).
schema = schemathesis.openapi.from_wsgi("/api/schema", application).include(
    path_regex=r"^/api/(jobs|user)\b")


@pytest.fixture(autouse=True)
def keep_the_test_transaction(db, dropbox, user):
    # The real WSGI app closes the database connection after each request, which
    # would end the test's transaction; Django's test client avoids it the same way.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def check(case, response):
    case.validate_response(response, checks=[not_a_server_error])
    if response.status_code >= 400 and response.status_code != 416:
        assert response.json()["detail"], response.text


@schema.parametrize()
@FUZZ
def test_the_api_client_cannot_cause_a_server_error(case, api_token):
    check(case, case.call(headers={"X-API-Token": api_token}))


@schema.parametrize()
@FUZZ
def test_an_admin_cannot_cause_a_server_error(case, admin):
    client = APIClient()
    client.force_login(admin)
    csrf = get_random_string(32)
    cookies = {"sessionid": client.cookies["sessionid"].value, "csrftoken": csrf}

    check(case, case.call(headers={"X-CSRFToken": csrf}, cookies=cookies))


@schema.parametrize()
@FUZZ
def test_strangers_change_nothing(case):
    check(case, case.call())
    assert Job.objects.count() == 0

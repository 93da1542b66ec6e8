"""Schemathesis against the app's own OpenAPI schema: no input makes a server error.

Runs in-process through the WSGI app as the bravo service (token), as an admin
session (so the admin-only operations reach their input checks too) and
without credentials.
"""

import subprocess

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.utils.crypto import get_random_string
from hypothesis import HealthCheck, settings
from rest_framework.test import APIClient
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from jobs.models import Batch, Job
from rendermanager.wsgi import application
from tests.helpers.api import api_test_settings  # noqa: F401  (autouse)

FUZZ = settings(max_examples=30, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))

# Loaded at import: schemathesis' lazy fixture loader does not work with pytest 9.
# Serving the schema needs no database.
schema = schemathesis.openapi.from_wsgi("/api/schema", application).include(
    path_regex=r"^/api/(jobs|user|batches)\b")
# Invalid input too (wrong types, out-of-range numbers, broken formats), not only what
# the schema allows: bad input must get a 4xx, never a 500.
schema.config.generation.update(modes=list(GenerationMode))
# The admin operations run for real against the test database and a throwaway
# git repository; only executing an update is left out (its own tests run it).
system_schema = schemathesis.openapi.from_wsgi("/api/schema", application).include(
    path_regex=r"^/api/system/").exclude(path_regex=r"update/execute")
system_schema.config.generation.update(modes=list(GenerationMode))


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


def admin_call(case, admin):
    client = APIClient()
    client.force_login(admin)
    csrf = get_random_string(32)
    cookies = {"sessionid": client.cookies["sessionid"].value, "csrftoken": csrf}

    return case.call(headers={"X-CSRFToken": csrf}, cookies=cookies)


@schema.parametrize()
@FUZZ
def test_an_admin_cannot_cause_a_server_error(case, admin):
    check(case, admin_call(case, admin))


@pytest.fixture
def update_repo(tmp_path, settings):
    """An install whose update remote is a local bare repository."""
    def git(*args, cwd):
        subprocess.run(["git", "-c", "user.name=T", "-c", "user.email=t@studio.test", *args],
                       cwd=cwd, check=True, capture_output=True)

    remote, install = tmp_path / "remote.git", tmp_path / "install"
    git("init", "-q", "--bare", "-b", "main", str(remote), cwd=tmp_path)
    git("init", "-q", "-b", "main", str(install), cwd=tmp_path)
    (install / "README").write_text("v1")
    git("add", "README", cwd=install)
    git("commit", "-qm", "v1", cwd=install)
    git("remote", "add", "origin", str(remote), cwd=install)
    git("push", "-q", "origin", "main", cwd=install)
    settings.UPDATE_REPO_DIR = install
    settings.UPDATE_REMOTE, settings.UPDATE_BRANCH = "origin", "main"


@system_schema.parametrize()
@FUZZ
def test_the_admin_operations_cannot_cause_a_server_error(case, admin, update_repo):
    check(case, admin_call(case, admin))


@schema.parametrize()
@FUZZ
def test_strangers_change_nothing(case):
    check(case, case.call())
    assert Job.objects.count() == 0
    assert Batch.objects.count() == 0

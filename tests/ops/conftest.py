"""Fixtures of the operations tests."""

import subprocess

import pytest
from django.test import Client

from systemadmin import updates
from tests.helpers.updates import Repos, marker


@pytest.fixture
def repos(tmp_path, settings):
    repos = Repos(tmp_path)
    settings.UPDATE_REPO_DIR = repos.install
    settings.UPDATE_GIT = "git"
    settings.UPDATE_REMOTE = "origin"
    settings.UPDATE_BRANCH = "main"
    settings.UPDATE_INSTALL_COMMAND = marker("install")
    settings.UPDATE_NPM_COMMAND = marker("npm")
    settings.UPDATE_MIGRATE_COMMAND = ["{python}", "manage.py", "migrate", "--noinput",
                                       "--settings=mini.settings"]
    settings.UPDATE_COLLECTSTATIC_COMMAND = marker("collectstatic")
    settings.UPDATE_RESTART_COMMAND = marker("restart")
    settings.UPDATE_STEP_TIMEOUT_SECONDS = 60
    # The install starts migrated to its first version.
    subprocess.run(updates.expand(settings.UPDATE_MIGRATE_COMMAND), cwd=repos.install,
                   check=True, capture_output=True)
    assert repos.applied_migrations() == ["0001_initial"]
    return repos


@pytest.fixture
def staff(admin):
    """An admin signed in to the Django admin (staff and superuser)."""
    admin.is_staff = admin.is_superuser = True
    admin.save()
    client = Client()
    client.force_login(admin)
    return client

"""Shared personas and the render farm fixture.

Tests run against whatever DATABASE_URL names (SQLite by default, PostgreSQL
in the second pass of ``make test``). Real worker processes connect to the
same test database, so it is always a file or a server, never in-memory.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.test import Client
from rest_framework.test import APIClient

from accounts.models import ApiToken, MacUsername, User
from tests.helpers.common import Farm, requires, signed_in


def pytest_configure(config):
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


# Fixtures through which a test reaches the database (farm: real workers on it).
DATABASE_FIXTURES = {"db", "transactional_db", "django_db_reset_sequences",
                     "django_db_serialized_rollback", "live_server"}


def touches_database(item) -> bool:
    """True unless the test never reaches the database: no django_db mark, no
    database fixture, and not in tests/ops (those start processes that do)."""
    if item.get_closest_marker("django_db") is not None:
        return True
    if DATABASE_FIXTURES & set(getattr(item, "fixturenames", ())):
        return True
    return Path(str(item.fspath)).parent.name == "ops"


def second_database_can_change(item) -> bool:
    """Whether the PostgreSQL pass of `make test` runs ``item`` again: it reaches the
    database, and it is not a browser test. What a page shows is drawn by the same
    code on either database, and the browser tests are a third of a pass's time; the
    database under those pages is checked on both by tests/web and tests/api (the live
    bridge's LISTEN/NOTIFY by tests/web/test_live.py). A browser test marked
    ``both_databases`` (the live list across a server restart) runs on both."""
    if not touches_database(item):
        return False
    if "chromium" in getattr(item, "fixturenames", ()):
        return item.get_closest_marker("both_databases") is not None
    return True


def pytest_collection_modifyitems(config, items):
    is_pg = django_settings.DATABASES["default"]["ENGINE"].endswith("postgresql")
    if is_pg:
        # `make test` runs every test on SQLite first; the PostgreSQL pass adds
        # what a second database can change, so it leaves out (deselects, and
        # pytest counts them) the rest (second_database_can_change).
        if os.environ.get("TESTS_DATABASE_ONLY") == "true":
            kept, dropped = [], []
            for item in items:
                (kept if second_database_can_change(item) else dropped).append(item)
            config.hook.pytest_deselected(items=dropped)
            items[:] = kept
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL: run `make test` (it starts a throwaway "
                            "server) or set DATABASE_URL=postgres://...")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def fresh_queue_forecast(monkeypatch):
    # The queue forecast is cached in the process by the latest event id, and ids
    # repeat across rolled-back tests. On a busy machine a build may be slow enough
    # to go to a background thread: tests see it rebuilt at once (the background
    # rebuild has a test of its own), and no build outlives its test.
    from jobs import forecast

    monkeypatch.setattr(forecast, "SYNC_BUILD_SECONDS", 3600.0)
    forecast.forget()
    yield
    forecast.forget()


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    # The personas have passwords; the default hasher spends ~0.3 s on each.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


# --- Personas -------------------------------------------------------------------


@pytest.fixture
def admin(db):
    user = User.objects.create_user("admin", email="admin@studio.test", password="pw",
                                    role=User.Role.ADMIN, first_name="Ada", last_name="Admin")
    return user


@pytest.fixture
def user(db):
    user = User.objects.create_user("alice", email="alice@studio.test", password="pw",
                                    first_name="Alice", last_name="Artist")
    MacUsername.objects.create(user=user, name="alice")
    return user


@pytest.fixture
def other_user(db):
    user = User.objects.create_user("bob", email="bob@studio.test", password="pw",
                                    first_name="Bob", last_name="Builder")
    MacUsername.objects.create(user=user, name="bob")
    return user


@pytest.fixture
def api_token(db):
    _, text = ApiToken.issue("bravo")
    return text


@pytest.fixture
def api_client(api_token):
    """The bravo service, calling the API with its token."""
    client = APIClient()
    client.credentials(HTTP_X_API_TOKEN=api_token)
    return client


@pytest.fixture
def admin_client(admin):
    """An admin's browser session calling the JSON API."""
    return signed_in(APIClient(), admin)


@pytest.fixture
def user_client(user):
    """A user's browser session calling the JSON API."""
    return signed_in(APIClient(), user)


@pytest.fixture
def browser_admin(admin):
    """An admin signed in to the dashboard pages (Django's test client)."""
    return signed_in(Client(), admin)


@pytest.fixture
def browser_user(user):
    """A user signed in to the dashboard pages (Django's test client)."""
    return signed_in(Client(), user)


# --- Files and the farm ------------------------------------------------------------


@pytest.fixture
def dropbox(tmp_path, settings):
    root = tmp_path / "Dropbox"
    (root / "projects").mkdir(parents=True)
    settings.DROPBOX_PATH = str(root)
    settings.RENDER_OUTPUT_DIR = str(root / "renders")
    settings.RENDER_TEMP_DIR = str(tmp_path / "render-tmp")
    return root


@pytest.fixture
def simulator(tmp_path_factory, settings):
    """The aerender simulator installed in a writable folder (nexrender patches it)."""
    from jobs.node.simulator import install

    target = tmp_path_factory.mktemp("aerender")
    binary = install(target)
    settings.AERENDER_PATH = str(binary)
    return binary


@pytest.fixture
def nexrender_cli(settings):
    cli = Path(settings.NEXRENDER_CLI)
    if not cli.is_file():
        requires("The nexrender CLI", "run `make setup` (npm ci installs the pinned version)")
    if shutil.which(settings.NODE_BINARY) is None:
        requires("Node.js", "install Node 20")
    return cli


@pytest.fixture
def farm(transactional_db, settings, dropbox, simulator, tmp_path):
    farm = Farm(settings, dropbox, simulator, tmp_path)
    yield farm
    farm.stop()



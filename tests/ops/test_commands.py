"""The management commands an operator runs on a first install."""

import io

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from accounts.models import ApiToken, MacUsername, User
from tests.helpers.api import api_test_settings  # noqa: F401  (autouse)

pytestmark = pytest.mark.django_db


def run(*args) -> list[str]:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue().strip().splitlines()


# --- create_api_token ------------------------------------------------------------------------


def test_create_api_token_prints_the_token_alone_on_the_last_line():
    lines = run("create_api_token", "Bravo")

    token = lines[-1]
    assert token.startswith("rm_") and " " not in token
    assert any("bravo" in line for line in lines[:-1])
    assert all(token not in line for line in lines[:-1])
    client = APIClient()
    client.credentials(HTTP_X_API_TOKEN=token)
    assert client.get("/api/jobs").status_code == 200
    assert ApiToken.objects.get().client == "bravo"


def test_each_call_makes_a_new_token():
    first = run("create_api_token", "plugin")[-1]
    second = run("create_api_token", "plugin")[-1]

    assert first != second
    assert ApiToken.objects.filter(client="plugin").count() == 2


@pytest.mark.parametrize("name", ["", "has space", "x" * 65, "_under", "ünï"])
def test_create_api_token_refuses_odd_client_names(name):
    with pytest.raises(CommandError, match="client name"):
        run("create_api_token", name)
    assert ApiToken.objects.count() == 0


# --- add_user ----------------------------------------------------------------------------------


def test_add_user_creates_a_user():
    lines = run("add_user", "Carol@Studio.test", "--mac-username", "carol", "c.smith")

    user = User.objects.get()
    assert user.email == user.username == "carol@studio.test"
    assert user.role == User.Role.USER and not user.is_admin
    assert not user.has_usable_password()
    assert sorted(user.mac_usernames.values_list("name", flat=True)) == ["c.smith", "carol"]
    assert "Created carol@studio.test" in lines[-1]


def test_add_user_updates_an_existing_user(user):
    lines = run("add_user", "alice@studio.test", "--admin", "--password", "s3cret",
                "--mac-username", "alice2", "--mac-username", "ALICE")

    user.refresh_from_db()
    assert user.is_admin and user.is_staff
    assert user.check_password("s3cret")
    assert sorted(user.mac_usernames.values_list("name", flat=True)) == ["alice", "alice2"]
    assert User.objects.count() == 1
    assert "Updated alice@studio.test" in lines[-1]


def test_add_user_leaves_the_role_alone_without_admin(admin):
    run("add_user", "admin@studio.test")

    admin.refresh_from_db()
    assert admin.is_admin


def test_a_mac_username_of_another_user_is_refused(user):
    with pytest.raises(CommandError, match="'Alice' belongs to alice@studio.test"):
        run("add_user", "bob@studio.test", "--mac-username", "Alice")

    assert not User.objects.filter(email="bob@studio.test").exists()
    assert MacUsername.objects.count() == 1


def test_add_user_approves_the_users_own_waiting_claim_but_not_anothers(user, other_user):
    MacUsername.objects.filter(user=user).update(status=MacUsername.Status.PENDING)

    with pytest.raises(CommandError, match="'alice' is claimed .* by alice@studio.test"):
        run("add_user", "bob@studio.test", "--mac-username", "alice")
    run("add_user", "alice@studio.test", "--mac-username", "alice")

    assert MacUsername.find_user("alice") == user


@pytest.mark.parametrize("args", [["not-an-email"], ["x@studio.test", "--mac-username", "a/b"]])
def test_add_user_refuses_bad_input(args):
    with pytest.raises(CommandError):
        run("add_user", *args)
    assert User.objects.count() == 0

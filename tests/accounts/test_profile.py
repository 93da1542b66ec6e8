"""A user's profile: the page and /api/user/* (macOS usernames, Slack ID)."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import MacUsername
from jobs.models import Job, Status

pytestmark = pytest.mark.django_db


def text(response) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode()))


def names(user) -> list[str]:
    return sorted(user.mac_usernames.values_list("name", flat=True))


# --- API --------------------------------------------------------------------------------------


def test_profile(user_client, user):
    user.avatar_url = "https://lh3.googleusercontent.com/a/alice"
    user.slack_user_id = "U0ALICE"
    user.save()

    response = user_client.get("/api/user/profile")

    assert response.status_code == 200
    assert response.json() == {
        "id": user.pk, "email": "alice@studio.test", "name": "Alice Artist",
        "avatar_url": "https://lh3.googleusercontent.com/a/alice", "role": "USER",
        "mac_usernames": ["alice"], "mac_username_claims": [], "slack_user_id": "U0ALICE",
    }


def test_admins_have_the_admin_role(admin_client):
    assert admin_client.get("/api/user/profile").json()["role"] == "ADMIN"


def test_replace_mac_usernames(user_client, user):
    response = user_client.put("/api/user/mac-usernames",
                               {"mac_usernames": ["alice.artist", " studio-mac ", "Alice.Artist"]},
                               format="json")

    assert response.status_code == 200
    assert response.json()["mac_usernames"] == ["alice.artist", "studio-mac"]
    assert names(user) == ["alice.artist", "studio-mac"]


def test_a_mac_username_taken_by_another_user_is_a_clear_400(user_client, user, other_user):
    response = user_client.put("/api/user/mac-usernames",
                               {"mac_usernames": ["alice", "BOB"]}, format="json")

    assert response.status_code == 400
    assert "'bob' already belongs to Bob Builder" in response.json()["detail"]
    assert response.json()["errors"]["mac_usernames"]
    assert names(user) == ["alice"]  # nothing changed
    assert names(other_user) == ["bob"]


@pytest.mark.parametrize("body", [
    {"mac_usernames": "alice"},
    {"mac_usernames": [42]},
    {"mac_usernames": ["a/b"]},
    {"mac_usernames": ["x" * 65]},
    {"nothing": []},
    ["alice"],
])
def test_bad_mac_usernames_are_refused(user_client, user, body):
    response = user_client.put("/api/user/mac-usernames", body, format="json")

    assert response.status_code == 400
    assert response.json()["detail"]
    assert names(user) == ["alice"]


def test_an_empty_list_removes_all(user_client, user):
    assert user_client.put("/api/user/mac-usernames", {"mac_usernames": []},
                           format="json").status_code == 200
    assert names(user) == []


def test_slack_id(user_client, user):
    response = user_client.put("/api/user/slack-id", {"slack_user_id": " u012ab3cd "},
                               format="json")

    assert response.status_code == 200
    assert response.json()["slack_user_id"] == "U012AB3CD"
    user.refresh_from_db()
    assert user.slack_user_id == "U012AB3CD"

    assert user_client.put("/api/user/slack-id", {"slack_user_id": ""},
                           format="json").json()["slack_user_id"] == ""


def test_bad_or_taken_slack_ids_are_refused(user_client, other_user):
    other_user.slack_user_id = "U0BOB"
    other_user.save()

    bad = user_client.put("/api/user/slack-id", {"slack_user_id": "@alice"}, format="json")
    taken = user_client.put("/api/user/slack-id", {"slack_user_id": "U0BOB"}, format="json")

    assert bad.status_code == 400 and "not a Slack user ID" in bad.json()["detail"]
    assert taken.status_code == 400 and "already belongs to Bob Builder" in taken.json()["detail"]


def test_only_signed_in_people_have_a_profile(api_client):
    anonymous = APIClient().get("/api/user/profile")
    token = api_client.get("/api/user/profile")

    assert anonymous.status_code == 401
    assert token.status_code == 403
    assert "API tokens have no user profile" in token.json()["detail"]


# --- The page ---------------------------------------------------------------------------------


@pytest.fixture
def browser_user(user):
    client = Client()
    client.force_login(user)
    return client


def test_the_profile_page_shows_who_you_are_and_your_week(browser_user, user, other_user):
    Job.objects.create(user=user, name="This week", status=Status.COMPLETED)
    Job.objects.create(user=user, name="Last month", status=Status.COMPLETED,
                       created_at=timezone.now() - dt.timedelta(days=30))
    Job.objects.create(user=other_user, name="Bob's", status=Status.COMPLETED)

    page = text(browser_user.get("/profile"))

    assert "Alice Artist" in page and "alice@studio.test" in page
    assert "This week" in page
    assert "Last month" not in page and "Bob's" not in page


def test_saving_the_profile_form(browser_user, user):
    response = browser_user.post("/profile", {"mac_usernames": "alice\nalice-laptop",
                                              "slack_user_id": "U0ALICE"}, follow=True)

    assert "Profile saved." in text(response)
    assert names(user) == ["alice", "alice-laptop"]
    user.refresh_from_db()
    assert user.slack_user_id == "U0ALICE"


def test_the_form_explains_a_taken_name(browser_user, user, other_user):
    response = browser_user.post("/profile", {"mac_usernames": "bob", "slack_user_id": ""})

    assert response.status_code == 200
    assert "already belongs to Bob Builder" in text(response).replace("&#x27;", "'")
    assert names(user) == ["alice"]


def test_first_login_welcomes_and_asks_for_a_mac_username(user):
    MacUsername.objects.filter(user=user).delete()
    client = Client()
    client.force_login(user)

    page = text(client.get("/profile?welcome=1"))

    assert "Welcome, Alice!" in page
    assert "add the macOS username" in page

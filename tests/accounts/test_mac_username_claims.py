"""Claims on macOS usernames: a name that would bring someone else's renders (or,
with MAC_USERNAME_APPROVAL, any name) waits for an admin, who sees recent
claims on the admin panel and approves or refuses them."""

from __future__ import annotations

import html
import re

import pytest
from rest_framework.test import APIClient

from accounts.models import MacUsername, User
from jobs.models import Job, Status
from systemadmin.models import SystemEvent

pytestmark = pytest.mark.django_db

BODY = {"project_path": "/Users/bob/Dropbox/projects/spot.aep",
        "saved_at": "2025-03-01T12:00:00Z",
        "nexrender": {"template": {"composition": "Main"}}}


def text(response) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ",
                                                   response.content.decode())))


@pytest.fixture
def mallory(db):
    return User.objects.create_user("mallory", email="mallory@studio.test", password="pw",
                                    first_name="Mallory")


@pytest.fixture
def mallory_client(mallory):
    client = APIClient()
    client.force_login(mallory)
    return client


@pytest.fixture
def bobs_renders(other_user):
    """Bob (other_user, macOS username "bob") has rendered before."""
    return Job.objects.create(user=other_user, mac_username="bob", status=Status.COMPLETED)


def claim(client, *names):
    return client.put("/api/user/mac-usernames", {"mac_usernames": list(names)},
                      format="json")


def submit_as(api_client, name):
    return api_client.post("/api/jobs", {**BODY, "mac_username": name}, format="json")


def test_a_free_name_is_approved_at_once(mallory_client, mallory, api_client, dropbox):
    profile = claim(mallory_client, "mallory").json()

    assert profile["mac_usernames"] == ["mallory"] and profile["mac_username_claims"] == []
    response = submit_as(api_client, "mallory")
    assert response.status_code == 202
    assert Job.objects.get(pk=response.json()["id"]).user == mallory


def test_a_name_with_another_persons_renders_waits_for_an_admin(
        mallory_client, mallory, other_user, bobs_renders, api_client, dropbox,
        django_capture_on_commit_callbacks):
    # Bob gave up his name (a new Mac); Mallory claims it first.
    MacUsername.objects.filter(user=other_user).delete()
    with django_capture_on_commit_callbacks(execute=True):
        profile = claim(mallory_client, "Bob").json()

    assert profile["mac_usernames"] == []
    assert profile["mac_username_claims"] == [
        {"name": "Bob", "status": "pending", "reason": "has renders of Bob Builder"}]
    # Until an admin decides, "bob" routes nobody's renders.
    response = submit_as(api_client, "bob")
    assert response.status_code == 400
    assert "waits for an admin's approval" in response.json()["errors"]["mac_username"][0]
    # The admins are told.
    alert = SystemEvent.objects.get(kind="mac_username_claim")
    assert "Mallory" in alert.message and "“Bob”" in alert.message
    assert "/system#claims" in alert.message


def test_the_admin_panel_lists_claims_and_approves(browser_admin, mallory_client, mallory,
                                                   other_user, bobs_renders, api_client,
                                                   dropbox):
    MacUsername.objects.filter(user=other_user).delete()
    claim(mallory_client, "bob")
    pending = MacUsername.objects.get(name="bob")

    panel = text(browser_admin.get("/system"))
    assert "macOS username claims" in panel
    assert "bob" in panel and "Waiting for an admin" in panel and "has renders of Bob" in panel

    ask = browser_admin.get(f"/system/claims/{pending.pk}/approve")
    assert ask.status_code == 200 and "Renders submitted as bob" in text(ask)
    done = browser_admin.post(f"/system/claims/{pending.pk}/approve")
    assert done.status_code == 302 and done["Location"].endswith("#claims")

    pending.refresh_from_db()
    assert pending.status == MacUsername.Status.APPROVED and pending.decided_by.email == \
        "admin@studio.test"
    response = submit_as(api_client, "bob")
    assert Job.objects.get(pk=response.json()["id"]).user == mallory
    assert SystemEvent.objects.filter(kind="mac_username_claim",
                                      message__contains="approved").exists()


def test_refusing_keeps_the_record_and_frees_the_name(browser_admin, mallory_client, mallory,
                                                      other_user, bobs_renders):
    MacUsername.objects.filter(user=other_user).delete()
    claim(mallory_client, "bob")
    pending = MacUsername.objects.get(name="bob")

    assert browser_admin.post(f"/system/claims/{pending.pk}/refuse").status_code == 302

    pending.refresh_from_db()
    assert pending.status == MacUsername.Status.REFUSED
    assert "bob" in text(browser_admin.get("/system"))  # still listed, as refused
    profile = mallory_client.get("/api/user/profile").json()
    assert profile["mac_username_claims"][0]["status"] == "refused"
    # The real Bob takes his name back; it has his own renders only: approved at once.
    bob = APIClient()
    bob.force_login(other_user)
    assert claim(bob, "bob").json()["mac_usernames"] == ["bob"]


def test_an_approved_claim_can_be_revoked(browser_admin, user):
    alice = MacUsername.objects.get(user=user)

    assert browser_admin.post(f"/system/claims/{alice.pk}/refuse").status_code == 302

    assert MacUsername.find_user("alice") is None


def test_a_waiting_claim_holds_the_name_against_others(mallory_client, other_user,
                                                       bobs_renders, user):
    MacUsername.objects.filter(user=other_user).delete()
    claim(mallory_client, "bob")
    alice = APIClient()
    alice.force_login(user)

    response = claim(alice, "alice", "BOB")

    assert response.status_code == 400
    assert "waiting for an admin" in response.json()["errors"]["mac_usernames"][0]


def test_claiming_a_refused_name_again_asks_again(mallory_client, other_user, bobs_renders,
                                                  admin):
    from accounts import claims

    MacUsername.objects.filter(user=other_user).delete()
    claim(mallory_client, "bob")
    claims.refuse(MacUsername.objects.get(name="bob"), admin)
    assert claim(mallory_client, "mallory").status_code == 200  # the refusal stays

    claim(mallory_client, "mallory", "bob")

    again = MacUsername.objects.get(name="bob")
    assert again.status == MacUsername.Status.PENDING and again.decided_by is None


def test_with_the_approval_setting_every_claim_waits_but_admins(mallory_client, admin_client,
                                                                settings):
    settings.MAC_USERNAME_APPROVAL = True

    profile = claim(mallory_client, "mallory").json()

    assert profile["mac_usernames"] == []
    assert "MAC_USERNAME_APPROVAL" in profile["mac_username_claims"][0]["reason"]
    assert claim(admin_client, "ada").json()["mac_usernames"] == ["ada"]


def test_the_profile_page_says_what_waits(mallory, other_user, bobs_renders):
    from django.test import Client

    MacUsername.objects.filter(user=other_user).delete()
    page = Client()
    page.force_login(mallory)

    saved = page.post("/profile", {"mac_usernames": "mallory\nbob", "slack_user_id": ""},
                      follow=True)

    body = text(saved)
    assert "“bob” waits for an admin's approval (has renders of Bob Builder)" in body
    assert "bob waits for an admin's approval" in body  # listed under the form
    # Both stay in the form's list.
    listed = re.search(r"<textarea[^>]*>(.*?)</textarea>", saved.content.decode(), re.S)
    assert set(listed.group(1).split()) == {"mallory", "bob"}


@pytest.mark.parametrize("claim_id", ["9" * 20, "%C2%B2", "0", "x"])
def test_impossible_claim_ids_are_404(browser_admin, claim_id):
    assert browser_admin.get(f"/system/claims/{claim_id}/approve").status_code == 404
    assert browser_admin.post(f"/system/claims/{claim_id}/refuse").status_code == 404


def test_users_cannot_decide_claims(browser_user, user):
    alice = MacUsername.objects.get(user=user)
    assert browser_user.post(f"/system/claims/{alice.pk}/refuse").status_code == 403
    alice.refresh_from_db()
    assert alice.status == MacUsername.Status.APPROVED

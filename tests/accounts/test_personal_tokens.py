"""Personal API tokens: made, named and revoked in the profile, shown once, stored as a
digest; they act for their person. An admin sees and revokes every token."""

from __future__ import annotations

import contextlib
import hashlib
import re
import threading

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import MAX_PERSONAL_TOKENS, ApiToken
from jobs.models import Job
from tests.helpers.api import api_test_settings  # noqa: F401  (autouse)
from tests.helpers.common import at_once, make_project, signed_in

pytestmark = pytest.mark.django_db


def make_token(page: Client, name: str) -> str:
    response = page.post("/profile/tokens", {"name": name})
    assert response.status_code == 200, response.content[:500]
    assert response["Cache-Control"] == "no-store"
    return re.search(r'id="new-token-value">(rm_[^<]+)<', response.content.decode()).group(1)


def api(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_X_API_TOKEN=token)
    return client


def body(**extra) -> dict:
    return {"project_path": "/Users/alice/Dropbox/projects/spot.aep",
            "saved_at": "2025-01-01T00:00:00Z",
            "nexrender": {"template": {"composition": "main"}}, **extra}


def test_a_token_is_shown_once_and_stored_as_a_digest(browser_user, user):
    text = make_token(browser_user, "render script")

    token = ApiToken.objects.get(user=user)
    assert token.name == "render script" and token.client == f"personal:{token.lookup}"
    assert token.digest == hashlib.sha256(text.encode()).hexdigest()
    assert not any(text in str(v) or text[3:] in str(v)
                   for v in ApiToken.objects.values().get().values())
    later = browser_user.get("/profile").content.decode()
    assert text not in later and "render script" in later and token.prefix in later
    assert ">never<" in later.replace("\n", "")  # not used yet


def test_a_personal_token_submits_for_its_person(browser_user, user, other_user, dropbox):
    make_project(dropbox, "spot.aep")
    text = make_token(browser_user, "script")

    response = api(text).post("/api/jobs", body(), format="json")  # no mac_username needed

    assert response.status_code == 202, response.content
    job = Job.objects.get()
    assert job.user == user and job.client == ApiToken.objects.get().client
    event = job.events.get(kind="submitted")
    assert event.actor == "alice@studio.test (personal token “script”)"
    # It sees what its person sees: their jobs from anywhere, nobody else's.
    Job.objects.create(user=user, client="bravo")
    Job.objects.create(user=other_user, client="bravo")
    listed = api(text).get("/api/jobs").json()
    assert listed["count"] == 2
    # A name that is someone else's is refused.
    refused = api(text).post("/api/jobs", body(mac_username="bob"), format="json")
    assert refused.status_code == 400 and "belongs to someone else" in refused.json()["detail"]
    # Last used, shown in the profile.
    assert ApiToken.objects.get().last_used_at is not None
    assert ">never<" not in browser_user.get("/profile").content.decode().replace("\n", "")
    # The job page says which token submitted it.
    page = browser_user.get(f"/jobs/{job.pk}").content.decode()
    assert "personal API token “script”" in page


def test_a_revoked_token_is_refused(browser_user, user, dropbox):
    make_project(dropbox, "spot.aep")
    text = make_token(browser_user, "laptop")
    token = ApiToken.objects.get()

    revoke = browser_user.post(f"/profile/tokens/{token.pk}/revoke")

    assert revoke.status_code == 302
    assert api(text).post("/api/jobs", body(), format="json").status_code == 401
    assert api(text).get("/api/jobs").status_code == 401
    assert "revoked" in browser_user.get("/profile").content.decode()


def test_tokens_of_someone_who_left_stop_working(browser_user, user):
    text = make_token(browser_user, "x")
    user.is_active = False
    user.save()
    assert api(text).get("/api/jobs").status_code == 401


def test_people_revoke_only_their_own_admins_anyones(browser_user, user, other_user, admin,
                                                     api_token):
    bobs, _ = ApiToken.issue_personal(other_user, "bob's")
    client_token = ApiToken.objects.get(client="bravo")

    assert browser_user.post(f"/profile/tokens/{bobs.pk}/revoke").status_code == 404
    assert browser_user.post(f"/profile/tokens/{client_token.pk}/revoke").status_code == 404
    assert ApiToken.objects.filter(revoked_at__isnull=True).count() == 2

    as_admin = signed_in(Client(), admin)
    page = as_admin.get("/profile").content.decode()
    assert 'id="all-tokens"' in page and "bob&#x27;s" in page and ">bravo<" in page
    assert "all-tokens" not in browser_user.get("/profile").content.decode()
    as_admin.post(f"/profile/tokens/{bobs.pk}/revoke")
    as_admin.post(f"/profile/tokens/{client_token.pk}/revoke")
    assert not ApiToken.objects.filter(revoked_at__isnull=True).exists()
    assert api(api_token).get("/api/jobs").status_code == 401


def test_a_token_needs_a_name_and_there_is_a_limit(browser_user, user):
    nameless = browser_user.post("/profile/tokens", {"name": "  "})
    assert nameless.status_code == 400 and not ApiToken.objects.exists()
    for n in range(MAX_PERSONAL_TOKENS):
        ApiToken.issue_personal(user, f"t{n}")
    full = browser_user.post("/profile/tokens", {"name": "one more"})
    assert full.status_code == 400 and "revoke one" in full.content.decode()
    ApiToken.objects.filter(user=user).update(revoked_at=timezone.now())
    assert browser_user.post("/profile/tokens", {"name": "one more"}).status_code == 200


@pytest.mark.django_db(transaction=True)
def test_two_requests_at_once_cannot_pass_the_limit(user, monkeypatch):
    for n in range(MAX_PERSONAL_TOKENS - 1):
        ApiToken.issue_personal(user, f"t{n}")
    # Each request, about to make its token, holds on until the other one is there too:
    # both are only if both counted 19. One that waits for the other's lock instead
    # never comes, and the first goes on after 3 s.
    both = threading.Barrier(2, timeout=3)
    issue = ApiToken.issue_personal.__func__

    def held(cls, person, name):
        with contextlib.suppress(threading.BrokenBarrierError):
            both.wait()
        return issue(cls, person, name)

    monkeypatch.setattr(ApiToken, "issue_personal", classmethod(held))
    pages = [signed_in(Client(), user) for _ in range(2)]

    answers, errors = at_once(2, lambda n: pages[n].post("/profile/tokens",
                                                         {"name": f"late {n}"}))

    assert not errors
    assert sorted(answer.status_code for answer in answers) == [200, 400]
    refused = next(answer for answer in answers if answer.status_code == 400)
    assert "revoke one" in refused.content.decode()
    assert ApiToken.objects.filter(user=user, revoked_at__isnull=True).count() \
        == MAX_PERSONAL_TOKENS


def test_a_token_never_manages_the_profile(browser_user):
    text = make_token(browser_user, "x")
    assert api(text).get("/api/user/profile").status_code == 403

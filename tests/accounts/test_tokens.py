"""API tokens: stored as digests, accepted from the environment, refused once revoked."""

import hashlib

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import ApiToken
from jobs.models import Job
from tests.helpers.api import api_test_settings  # noqa: F401  (autouse)

pytestmark = pytest.mark.django_db


def client_with(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_X_API_TOKEN=token)
    return client


def test_only_a_digest_is_stored(api_token):
    token = ApiToken.objects.get()

    assert api_token.startswith("rm_")
    assert token.digest == hashlib.sha256(api_token.encode()).hexdigest()
    stored = [str(value) for value in ApiToken.objects.values().get().values()]
    assert not any(api_token in value or api_token[3:] in value for value in stored)


def test_a_token_works(api_token):
    response = client_with(api_token).get("/api/jobs")

    assert response.status_code == 200
    assert ApiToken.objects.get().last_used_at is not None


def test_an_environment_token_works(settings, dropbox, user):
    settings.API_TOKENS = {"bravo": "env-token-for-bravo-0123456789"}
    client = client_with("env-token-for-bravo-0123456789")

    assert client.get("/api/jobs").status_code == 200
    response = client.post("/api/jobs", {
        "project_path": "/Users/alice/Dropbox/projects/spot.aep",
        "saved_at": "2025-03-01T12:00:00Z", "mac_username": "alice",
        "nexrender": {"template": {"composition": "Main"}}}, format="json")
    assert response.status_code == 202
    assert Job.objects.get().client == "bravo"


def test_an_empty_environment_token_opens_nothing(settings):
    settings.API_TOKENS = {"bravo": ""}

    assert client_with("").get("/api/jobs").status_code == 401


def test_a_revoked_token_is_401(api_token):
    ApiToken.objects.update(revoked_at=timezone.now())

    response = client_with(api_token).get("/api/jobs")

    assert response.status_code == 401
    assert response.json()["detail"] == "Invalid API token."


@pytest.mark.parametrize("mangle", [
    lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),
    lambda t: t.upper(),
    lambda t: t[:12],
    lambda t: "rm_",
    lambda t: "x" * 500,
    lambda t: "Bearer " + t,
])
def test_invalid_tokens_are_401(api_token, mangle):
    response = client_with(mangle(api_token)).get("/api/jobs")

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'X-API-Token realm="api"'


def test_a_missing_token_is_401_not_403():
    response = APIClient().get("/api/jobs")

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'X-API-Token realm="api"'

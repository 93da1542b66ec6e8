"""API rate limits per token: a clear 429 with Retry-After."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from accounts.models import ApiToken


@pytest.fixture(autouse=True)
def fresh_counts(settings):
    settings.API_RATE_LIMIT = "3/min"
    cache.clear()
    yield
    cache.clear()


def token_client(client_name: str) -> APIClient:
    _, text = ApiToken.issue(client_name)
    client = APIClient()
    client.credentials(HTTP_X_API_TOKEN=text)
    return client


def test_a_token_over_its_limit_gets_a_clear_429(db):
    bravo = token_client("bravo")
    assert [bravo.get("/api/jobs").status_code for _ in range(3)] == [200, 200, 200]
    response = bravo.get("/api/jobs")
    assert response.status_code == 429
    assert 1 <= int(response["Retry-After"]) <= 60
    detail = response.json()["detail"]
    assert detail.startswith("Rate limit exceeded for API client 'bravo': at most 3 requests "
                             "per minute. Try again in ")
    assert "Expected available" not in detail


def test_each_token_has_its_own_budget(db):
    first, second = token_client("bravo"), token_client("plugin")
    for _ in range(3):
        first.get("/api/jobs")
    assert first.get("/api/jobs").status_code == 429
    assert second.get("/api/jobs").status_code == 200


def test_environment_tokens_are_limited_by_client(db, settings):
    settings.API_TOKENS = {"bravo": "env-token-for-bravo"}
    client = APIClient()
    client.credentials(HTTP_X_API_TOKEN="env-token-for-bravo")
    assert [client.get("/api/jobs").status_code for _ in range(4)] == [200, 200, 200, 429]


def test_sessions_are_not_limited(user_client):
    assert {user_client.get("/api/jobs").status_code for _ in range(6)} == {200}


def test_the_rate_is_checked_at_start(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    env = {"DEBUG": "true", "API_RATE_LIMIT": "lots",
           "DJANGO_SETTINGS_MODULE": "rendermanager.settings",
           "ENV_FILE": str(tmp_path / "none.env"), "DATA_DIR": str(tmp_path),
           "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-c", "import django; django.setup()"],
                            cwd=Path(__file__).resolve().parents[2], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "API_RATE_LIMIT" in result.stderr.strip().splitlines()[-1]

"""Fixtures shared by the API tests; import the autouse one into a test module."""

import pytest
from django.core.cache import cache


@pytest.fixture(autouse=True)
def api_test_settings(settings):
    # The personas have passwords; the default hasher spends ~0.3 s on each.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # Token ids repeat across rolled-back tests, so rate-limit counts would carry over
    # from test to test; these tests are about everything but the rate limit.
    settings.API_RATE_LIMIT = "100000/min"
    cache.clear()

"""Fixtures shared by the render node's tests."""

import pytest


@pytest.fixture
def fast_checks(settings, dropbox):
    """Validation in tenths of a second instead of seconds."""
    settings.MIN_FILE_AGE_SECONDS = 0
    settings.STABILITY_CHECK_SECONDS = 0.3
    settings.VALIDATION_INTERVAL_SECONDS = 0.1
    settings.VALIDATION_ATTEMPTS = 10
    settings.SAVED_AT_TOLERANCE_SECONDS = 2
    return settings

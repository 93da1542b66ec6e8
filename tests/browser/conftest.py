"""The browser tests' fixtures: Debian's Chromium, and daphne on the test database."""

from tests.helpers.browser import chromium, daphne, server  # noqa: F401  (fixtures)

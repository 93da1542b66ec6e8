"""Real-browser test helpers: Debian's Chromium driven by Playwright, and
daphne serving the app from a subprocess on the test database (with the
``farm`` fixture's settings, so it sees what the render workers see).

Test modules take the fixtures in by name::

    from tests.helpers import browser as browser_helpers
    chromium = browser_helpers.chromium
    server = browser_helpers.server
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.helpers.common import REPO, requires, wait_for

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-quic",
                 "--disable-sync"]
SCREENSHOTS = REPO / "artifacts" / "screenshots"
LIVE = 30_000  # ms: generous for slow CI machines; updates normally take < 1 s


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def chromium():
    if not CHROMIUM.exists():
        requires("Chromium", "apt-get install chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        requires("Playwright for Python", "pip install -e '.[test]'")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def server(farm):
    """daphne on a free port, on the test database, with password sign-in on."""
    port = free_port()
    log_path = farm.tmp_path / "daphne.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
             "rendermanager.asgi:application"],
            cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
            env=farm.env(ALLOW_PASSWORD_LOGIN="true", ALLOWED_HOSTS="127.0.0.1,localhost",
                         PORT=port, PUBLIC_URL=f"http://127.0.0.1:{port}"))
    base = f"http://127.0.0.1:{port}"

    def up():
        if proc.poll() is not None:
            raise AssertionError("daphne exited:\n" + log_path.read_text(errors="replace"))
        with contextlib.suppress(requests.RequestException):
            return requests.get(f"{base}/health", timeout=1).status_code == 200
        return False

    wait_for(up, timeout=30, interval=0.2, message="daphne did not start")
    yield base
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def set_password(user, settings, password: str = "pw") -> None:
    """The tests hash passwords with MD5 for speed; daphne only knows the real hashers."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]
    user.set_password(password)
    user.save()


def sign_in(page, base: str, username: str, password: str = "pw", next_url: str = "/") -> None:
    """Password sign-in (on for the ``server`` fixture, as in ``make run``)."""
    from playwright.sync_api import expect

    page.goto(f"{base}{next_url}")
    expect(page).to_have_url(f"{base}/accounts/login/?next={next_url}")
    page.fill("#id_login", username)
    page.fill("#id_password", password)
    page.click("#password-login button[type=submit]")
    expect(page).to_have_url(f"{base}{next_url}")

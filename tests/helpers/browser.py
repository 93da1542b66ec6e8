"""Real-browser test helpers: Debian's Chromium driven by Playwright, and
daphne serving the app from a subprocess on the test database (with the
``farm`` fixture's settings, so it sees what the render workers see).

A package's conftest.py takes the fixtures in (tests/browser/conftest.py); a test
module outside such a package assigns them by name (``daphne, server =
browser_helpers.daphne, browser_helpers.server``), which gives it fixtures of its own.
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


@pytest.fixture(scope="package")
def chromium():
    """One Chromium for every test of a package (each test opens its own contexts:
    nothing is shared between them but the process). Package-scoped, not session:
    Playwright's sync API keeps an event loop on this thread while it runs, which the
    asyncio tests of other packages must not find."""
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


class Daphne:
    """daphne on a free port, on the test database, with password sign-in on; it can be
    stopped and started again on the same port (a web server that went away)."""

    def __init__(self, farm, **env):
        self.farm = farm
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = env
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        log_path = self.farm.tmp_path / f"daphne-{self.starts}.log"
        with open(log_path, "wb") as log:
            self.proc = proc = subprocess.Popen(
                [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port),
                 "rendermanager.asgi:application"],
                cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                env=self.farm.env(ALLOW_PASSWORD_LOGIN="true",
                                  ALLOWED_HOSTS="127.0.0.1,localhost", PORT=self.port,
                                  PUBLIC_URL=self.base, **self.env))

        def up():
            if proc.poll() is not None:
                raise AssertionError("daphne exited:\n" + log_path.read_text(errors="replace"))
            with contextlib.suppress(requests.RequestException):
                return requests.get(f"{self.base}/health", timeout=1).status_code == 200
            return False

        wait_for(up, timeout=30, interval=0.2, message="daphne did not start")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture
def daphne(farm):
    web = Daphne(farm)
    web.start()
    yield web
    web.stop()


@pytest.fixture
def server(daphne):
    """The base URL of ``daphne``."""
    return daphne.base


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


WIDTHS = (390, 1440)  # a phone, a desktop


def shoot_at_widths(page, name: str) -> None:
    """Screenshots of ``page`` at each of WIDTHS (artifacts/screenshots/NAME-WIDTH.png),
    after checking that nothing makes it wider than the screen; the page's own size
    comes back afterwards."""
    size = page.viewport_size
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    try:
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": size["height"]})
            wide = page.evaluate("document.documentElement.scrollWidth")
            assert wide <= width, f"{page.url} is {wide} px wide at {width} px"
            page.screenshot(path=str(SCREENSHOTS / f"{name}-{width}.png"), full_page=True)
    finally:
        page.set_viewport_size(size)

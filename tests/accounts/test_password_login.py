"""Passwords work nowhere unless ALLOW_PASSWORD_LOGIN=true, and the Django admin
signs in through the dashboard's login (Google, or allauth's password form
with its rate limits when passwords are allowed).

The test client covers the rules; real daphne processes (the way `make run`
and production serve) cover both settings end to end, since allauth reads
ALLOW_PASSWORD_LOGIN when its URLs load.
"""

from __future__ import annotations

import re

import pytest
import requests
from django.contrib.auth import authenticate
from django.test import Client

from accounts.models import User
from tests.helpers import browser as browser_helpers

pytestmark = pytest.mark.django_db


@pytest.fixture
def superuser(db):
    # What `demo_setup` or `createsuperuser` leaves behind.
    return User.objects.create_superuser("root", email="root@elsewhere.test", password="pw",
                                         role=User.Role.ADMIN)


def test_no_password_authenticates_when_passwords_are_off(superuser, settings):
    settings.ALLOW_PASSWORD_LOGIN = False

    assert authenticate(username="root", password="pw") is None
    assert authenticate(email="root@elsewhere.test", password="pw") is None
    assert not Client().login(username="root", password="pw")


def test_the_admin_login_page_is_the_dashboards(superuser, settings):
    settings.ALLOW_PASSWORD_LOGIN = False
    client = Client()

    page = client.get("/admin/login/?next=/admin/jobs/job/")
    assert page.status_code == 302
    assert page["Location"] == "/accounts/login/?next=/admin/jobs/job/"

    # Its old password form is gone: a POST signs nobody in.
    client.post("/admin/login/?next=/admin/", {"username": "root", "password": "pw"})
    assert "_auth_user_id" not in client.session
    assert client.get("/system").status_code == 302
    assert client.get("/admin/").status_code == 302


def test_the_admin_login_sends_signed_in_staff_on_and_refuses_others(superuser, user):
    staff, plain = Client(), Client()
    staff.force_login(superuser)
    plain.force_login(user)

    assert staff.get("/admin/login/?next=/admin/jobs/job/")["Location"] == "/admin/jobs/job/"
    assert staff.get("/admin/login/?next=https://evil.test/")["Location"] == "/admin/"
    # A signed-in user without admin rights gets a 403, not a sign-in loop.
    assert plain.get("/admin/login/?next=/admin/").status_code == 403


def test_a_password_session_ends_when_passwords_are_turned_off(superuser, settings):
    settings.ALLOW_PASSWORD_LOGIN = True
    client = Client()
    assert client.login(username="root", password="pw")
    assert client.get("/system").status_code == 200

    settings.ALLOW_PASSWORD_LOGIN = False

    assert client.get("/system").status_code == 302
    assert client.get("/admin/").status_code == 302


def test_google_sessions_do_not_depend_on_the_password_setting(superuser, settings):
    settings.ALLOW_PASSWORD_LOGIN = False
    client = Client()
    client.force_login(superuser)  # how allauth logs a Google user in: the session backend

    assert client.get("/system").status_code == 200
    assert client.get("/admin/").status_code == 200


# --- Through daphne -------------------------------------------------------------------------


daphne, server = browser_helpers.daphne, browser_helpers.server


def csrf_post(session: requests.Session, url: str, data: dict) -> requests.Response:
    page = session.get(url, timeout=30)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    payload = dict(data, csrfmiddlewaretoken=token.group(1) if token else "")
    return session.post(page.url, data=payload, headers={"Referer": page.url}, timeout=30)


@pytest.fixture
def daphne_with_passwords_off(farm, monkeypatch):
    """The `server` fixture's daphne, started with ALLOW_PASSWORD_LOGIN=false."""
    env = farm.env

    monkeypatch.setattr(farm, "env", lambda **extra: env(**{**extra,
                                                            "ALLOW_PASSWORD_LOGIN": "false"}))
    return farm


@pytest.mark.slow
def test_through_daphne_passwords_off_open_neither_the_admin_nor_the_panel(
        daphne_with_passwords_off, superuser, settings, server):
    browser_helpers.set_password(superuser, settings)
    session = requests.Session()

    answer = csrf_post(session, f"{server}/admin/login/?next=/admin/",
                       {"username": "root", "password": "pw"})
    assert "/accounts/login/" in answer.url
    # The dashboard's sign-in offers Google only, and takes no password either.
    assert 'name="password"' not in answer.text
    session.post(f"{server}/accounts/login/", data={"login": "root", "password": "pw"},
                 timeout=30)

    for page in ("/system", "/admin/"):
        response = session.get(f"{server}{page}", allow_redirects=False, timeout=30)
        assert response.status_code == 302 and "login" in response.headers["Location"], page


@pytest.mark.slow
def test_through_daphne_the_admin_signs_in_on_the_dashboard_form_with_its_rate_limit(
        superuser, settings, server):
    browser_helpers.set_password(superuser, settings)
    session = requests.Session()

    signed_in = csrf_post(session, f"{server}/admin/login/?next=/admin/",
                          {"login": "root", "password": "pw"})
    assert signed_in.url == f"{server}/admin/"
    assert "Site administration" in signed_in.text

    # allauth's limit on failed attempts guards the admin's way in too.
    stranger = requests.Session()
    for _ in range(6):
        csrf_post(stranger, f"{server}/admin/login/", {"login": "root", "password": "guess"})
    refused = csrf_post(stranger, f"{server}/admin/login/", {"login": "root", "password": "pw"})
    assert "Too many failed login attempts" in refused.text
    assert stranger.get(f"{server}/admin/", allow_redirects=False,
                        timeout=30).status_code == 302

"""Small things a new user ran into: a slash too many, Django's debug 404, a developer
note on the sign-in page, a 400 that named one missing field of four, the Django admin's
two "Accounts" sections and its "Add" for the record of events and logs."""

from __future__ import annotations

import re

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(("url", "target"), [("/profile/", "/profile"),
                                             ("/jobs/new/?x=1", "/jobs/new?x=1"),
                                             ("/review//", "/review")])
def test_a_slash_too_many_leads_to_the_page(browser_user, url, target):
    response = browser_user.get(url)
    assert response.status_code == 301 and response["Location"] == target


@pytest.mark.parametrize("url", ["/\\evil.test/", "/%5Cevil.test/", "/%2F%2Fevil.test/"])
def test_the_redirect_never_leaves_the_site(browser_user, url):
    assert browser_user.get(url).status_code == 404


def test_a_missing_page_is_ours_and_lists_no_urls(browser_user, settings):
    settings.DEBUG = True  # as in `make run`
    response = browser_user.get("/no-such-page")

    page = response.content.decode()
    assert response.status_code == 404 and "Nothing here" in page
    assert "URLconf" not in page and "api/schema" not in page
    assert browser_user.get("/nothing/").status_code == 404  # nothing to redirect to


def test_a_missing_api_endpoint_answers_json(api_client, settings):
    settings.DEBUG = True
    response = api_client.get("/api/nothing-here")
    assert response.status_code == 404 and "No such API endpoint" in response.json()["detail"]


def test_the_sign_in_page_has_no_developer_note(settings):
    page = Client().get("/accounts/login/").content.decode()
    assert "GOOGLE_CLIENT_ID" not in page
    assert "not set up on this server" in page or "password-login" in page


def test_an_empty_submission_names_every_missing_field(api_client):
    response = api_client.post("/api/jobs", {}, format="json")

    detail = response.json()["detail"]
    assert response.status_code == 400
    for field in ("project_path", "saved_at", "mac_username", "nexrender"):
        assert field in detail, detail
        assert response.json()["errors"][field] == ["This field is required."]


def test_the_django_admin_has_one_accounts_section(staff):
    page = staff.get("/admin/").content.decode()

    sections = re.findall(r'<caption>\s*<a [^>]*class="section"[^>]*>([^<]+)</a>', page)
    assert sections.count("Accounts") == 1, sections
    assert "Social Accounts" not in sections
    assert "Google sign-ins" in page and "Sign-in email addresses" in page
    assert staff.get("/admin/accounts/googleaccount/").status_code == 200


def test_events_and_logs_cannot_be_added_by_hand(staff):
    assert staff.get("/admin/jobs/jobevent/add/").status_code == 403
    assert staff.get("/admin/jobs/joblog/add/").status_code == 403
    page = staff.get("/admin/jobs/jobevent/").content.decode()
    assert "/admin/jobs/jobevent/add/" not in page


def test_the_admin_panel_links_the_django_admin(staff):
    page = staff.get("/system").content.decode()
    assert 'href="/admin/" id="django-admin-link"' in page


def test_an_admin_without_staff_status_gets_no_link_that_ends_in_403(browser_admin):
    # The Django admin refuses accounts without staff status (accounts.admin_site).
    page = browser_admin.get("/system").content.decode()
    assert "django-admin-link" not in page and 'id="django-admin-note"' in page
    assert browser_admin.get("/admin/").status_code in (302, 403)

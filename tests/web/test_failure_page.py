"""A job's page says why it failed (After Effects' words, then what to do) and what
AE warned about; the live fragment that replaces it while a job runs says the same."""

from __future__ import annotations

import re

import pytest
from django.template.loader import render_to_string

from jobs.models import Job, Status

pytestmark = pytest.mark.django_db

CAUSE = "After Effects: No comp was found with the given name."
HINT = ("The job asks for the composition “Main” and the project has none by that name: "
        "check template.composition against the project.")


def page_text(client, job) -> str:
    html = client.get(f"/jobs/{job.pk}").content.decode()
    words = " ".join(re.sub(r"<[^>]+>", " ", html).split())
    return re.sub(r" ([:)])", r"\1", words)


def make(user, **fields) -> Job:
    return Job.objects.create(user=user, project_path="/p/spot.aep", name="spot.aep",
                              config={"template": {"composition": "Main"}}, **fields)


def test_a_failed_job_shows_its_cause_hint_code_and_warnings(browser_user, user):
    job = make(user, status=Status.FAILED, error_code="missing_composition",
               error=f"Failed after 1 attempt(s): {CAUSE}\n{HINT}",
               warnings=[{"code": "missing_font",
                          "message": "Missing font: Bebas Regular (Text Layer)"}])
    body = page_text(browser_user, job)
    assert f"Composition not found: {CAUSE}" in body
    assert HINT in body
    assert "Cause code missing_composition" in body
    assert "After Effects warnings (1)" in body
    assert "Missing font: Missing font: Bebas Regular (Text Layer)" in body


def test_an_attempt_that_will_be_retried_says_so(browser_user, user):
    job = make(user, status=Status.QUEUED, error_code="ae_busy", attempts=1,
               error="Attempt 1 of 3 failed: After Effects can not render for aerender.\n"
                     "Close After Effects and any dialog on the node.")
    body = page_text(browser_user, job)
    assert ("Last attempt failed (after effects was busy): After Effects can not render for "
            "aerender.") in body
    assert "Close After Effects and any dialog on the node." in body


def test_a_completed_job_with_warnings_shows_them_without_an_error(browser_user, user):
    job = make(user, status=Status.COMPLETED, warnings=[
        {"code": "missing_footage", "message": "Unable to Render: File Not Found C:\\a.jpg"}])
    body = page_text(browser_user, job)
    assert "Missing footage: Unable to Render: File Not Found C:\\a.jpg" in body
    assert "Cause code" not in body


def test_the_live_fragment_carries_the_failure(user):
    job = make(user, status=Status.FAILED, error_code="missing_composition",
               error=f"Failed after 1 attempt(s): {CAUSE}\n{HINT}")
    event = job.events.create(kind="status", from_status="RENDERING", to_status="FAILED")
    html = render_to_string("jobs/_live_detail.html", {"job": job, "events": [event],
                                                       "download_url": "/x"})
    assert 'id="job-failure"' in html and CAUSE in html and HINT in html

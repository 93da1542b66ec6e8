"""Reviewing previews in the dashboard: the "To review" page, a job's review panel,
approving and rejecting (one by one, in place with htmx, or in bulk)."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from jobs.models import Job, JobEvent, JobPreview, Status
from tests.web.test_dashboard import make_job, text

pytestmark = pytest.mark.django_db


def awaiting(user, **fields):
    job = make_job(user, status=Status.AWAITING_REVIEW, review=True, needs_preview=True,
                   progress=100, **fields)
    JobPreview.objects.create(job=job, path="/nowhere/preview.mp4", size=1234, width=160,
                              height=90, jpeg=b"\xff\xd8jpeg")
    return job


def test_the_review_page_lists_my_previews_waiting(browser_user, user, other_user):
    mine = awaiting(user, name="Ana-1")
    theirs = awaiting(other_user, name="Bobs-1")
    make_job(user, status=Status.QUEUED, review=True, needs_preview=True, name="Later-1")

    response = browser_user.get("/review")

    assert response.status_code == 200
    html = response.content.decode()
    assert f'id="review-{mine.pk}"' in html and str(theirs.pk) not in html
    assert "Later-1" not in html
    assert f'src="/api/jobs/{mine.pk}/preview?v=' in html
    assert f'id="approve-{mine.pk}"' in html
    assert "1 preview waiting for your decision" in text(response)


def test_admins_review_everyones_previews(browser_admin, user, other_user):
    jobs = [awaiting(user), awaiting(other_user)]

    html = browser_admin.get("/review").content.decode()

    assert all(f'id="approve-{job.pk}"' in html for job in jobs)


def test_approving_queues_the_final_render_and_keeps_the_comment(browser_user, user):
    job = awaiting(user)

    response = browser_user.post(f"/jobs/{job.pk}/decide", {
        "decision": "approve", "comment": "Logo bigger next time", "next": "/review"})

    assert response.status_code == 302 and response["Location"] == "/review"
    job.refresh_from_db()
    assert (job.status, job.needs_preview, job.attempts) == (Status.QUEUED, False, 0)
    event = job.events.get(kind="approved")
    assert (event.actor, event.message, event.from_status, event.to_status) == (
        "alice@studio.test", "Logo bigger next time", "AWAITING_REVIEW", "QUEUED")
    # It stays on the page, decided, so the reviewer sees it render.
    page = browser_user.get("/review")
    assert "Reviewed in the last 24 hours" in text(page)
    assert 'data-decision="approved"' in page.content.decode()


def test_rejecting_needs_a_reason_and_ends_the_job(browser_user, user):
    job = awaiting(user)

    browser_user.post(f"/jobs/{job.pk}/decide", {"decision": "reject", "comment": "  "})
    job.refresh_from_db()
    assert job.status == Status.AWAITING_REVIEW

    browser_user.post(f"/jobs/{job.pk}/decide", {"decision": "reject",
                                                 "comment": "Wrong photo"})
    job.refresh_from_db()
    assert job.status == Status.REJECTED
    assert job.error == "Rejected by alice@studio.test: Wrong photo"
    assert job.finished_at is not None
    assert job.events.get(kind="rejected").message == "Wrong photo"


def test_htmx_swaps_the_decision_in_place(browser_user, user):
    job = awaiting(user)

    response = browser_user.post(f"/jobs/{job.pk}/decide", {"decision": "approve",
                                                            "comment": "ok"},
                                 HTTP_HX_REQUEST="true")

    assert response.status_code == 200
    html = response.content.decode()
    assert f'<div class="decision" id="decision-{job.pk}">' in html
    assert "<form" not in html
    assert "Approved" in html and "alice@studio.test" in html and "ok" in html
    # Deciding again is refused, in place.
    again = browser_user.post(f"/jobs/{job.pk}/decide", {"decision": "reject",
                                                         "comment": "no"},
                              HTTP_HX_REQUEST="true")
    assert "only a job awaiting review can be decided" in again.content.decode()
    assert Job.objects.get(pk=job.pk).status == Status.QUEUED


def test_nobody_else_can_decide(user, other_user):
    job = awaiting(user)
    client = Client()
    client.force_login(other_user)

    assert client.post(f"/jobs/{job.pk}/decide", {"decision": "approve"}).status_code == 404
    assert Job.objects.get(pk=job.pk).status == Status.AWAITING_REVIEW


def test_bulk_approve_of_selected_rows(browser_user, user):
    first, second, third = awaiting(user), awaiting(user), awaiting(user)

    response = browser_user.post("/review/approve", {
        "job": [str(first.pk), str(second.pk)], "action": "approve",
        "comment": "Good to go", "next": "/review"}, follow=True)

    assert "Approved 2 previews" in text(response)
    statuses = {j.pk: j.status for j in Job.objects.filter(pk__in=[first.pk, second.pk,
                                                                  third.pk])}
    assert statuses == {first.pk: Status.QUEUED, second.pk: Status.QUEUED,
                        third.pk: Status.AWAITING_REVIEW}
    assert set(JobEvent.objects.filter(kind="approved").values_list("message", flat=True)) \
        == {"Good to go"}


def test_the_job_page_has_the_review_panel(browser_user, user):
    job = awaiting(user)
    JobEvent.objects.create(job=job, kind="rejected", actor="ada@studio.test",
                            message="earlier note")

    response = browser_user.get(f"/jobs/{job.pk}")

    html = response.content.decode()
    assert 'id="job-review"' in html
    assert re.search(rf'<video class="preview" id="preview-{job.pk}" '
                     rf'src="/api/jobs/{job.pk}/preview\?v=\d+" '
                     rf'poster="/api/jobs/{job.pk}/preview/thumbnail\?v=\d+"', html)
    assert f'id="approve-{job.pk}"' in html
    assert "earlier note" in text(response)


def test_the_status_tabs_know_review_and_rejected(browser_user, user):
    waiting, rejected = awaiting(user), make_job(user, status=Status.REJECTED)
    make_job(user, status=Status.COMPLETED)

    review = browser_user.get("/?status=review").content.decode()
    assert f'id="job-{waiting.pk}"' in review and str(rejected.pk) not in review
    assert f'id="job-{rejected.pk}"' in browser_user.get("/?status=rejected").content.decode()
    active = browser_user.get("/?status=active").content.decode()
    assert f'id="job-{waiting.pk}"' in active
    assert "status-review" in review

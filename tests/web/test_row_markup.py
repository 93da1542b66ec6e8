"""The job list's rows rendered in Python (jobs.templatetags.job_rows, issue #14: the
template engine spent two thirds of a page on them) give the markup the row template
gave: tests/web/reference/job_row.html is that template, with the status, progress,
estimate and problem templates the job page still includes. Jobs in every state, as an
admin and as a user, with and without a live push's ``oob``."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from django.template import engines
from django.utils import timezone

from jobs import forecast
from jobs.models import Job, RenderNode, Status

pytestmark = pytest.mark.django_db

REFERENCE = (Path(__file__).parent / "reference" / "job_row.html").read_text()


def variants(user) -> list[Job]:
    node = RenderNode.objects.create(name="node-<1>")
    now = timezone.now()
    base = {"user": user, "mac_username": "alice", "project_path": "clients/a&b/spot <1>.aep"}
    specs = [
        {"status": Status.COMPLETED, "progress": 100, "has_thumbnail": True,
         "started_at": now - dt.timedelta(minutes=75), "finished_at": now - dt.timedelta(minutes=3),
         "composition": "Main & \"Intro\"", "created_at": now - dt.timedelta(seconds=20)},
        {"status": Status.COMPLETED, "progress": 100, "created_at": now - dt.timedelta(days=400)},
        {"status": Status.RENDERING, "progress": 42.6, "node": node, "phase": "rendering",
         "started_at": now - dt.timedelta(seconds=95), "eta_seconds": 300,
         "created_at": now - dt.timedelta(minutes=5)},
        {"status": Status.RENDERING, "progress": 0, "node": node, "phase": "",
         "created_at": now - dt.timedelta(hours=3)},
        {"status": Status.RENDERING, "progress": 5, "node": node, "phase": "rendering",
         "error": "Attempt 1 of 3 failed: aerender Error: <crash>\nsecond line",
         "error_code": "AE_CRASH", "attempts": 2, "started_at": now,
         "created_at": now - dt.timedelta(hours=30)},
        {"status": Status.QUEUED, "priority": 10, "created_at": now - dt.timedelta(days=3)},
        {"status": Status.QUEUED, "error": "Attempt 1 of 3 failed: node lost", "attempts": 1},
        {"status": Status.PENDING, "name": "Named <job>"},
        {"status": Status.VALIDATING, "validation_message": "waiting for footage/<a>.mov"},
        {"status": Status.VALIDATING},
        {"status": Status.FAILED, "error": "aerender Error: missing footage\nRelink it",
         "error_code": "MISSING_FOOTAGE", "progress": 30},
        {"status": Status.FAILED, "error": "Failed after 3 attempt(s): boom & <b>"},
        {"status": Status.FAILED, "error": ""},
        {"status": Status.CANCELLED, "error": "Cancelled by <admin>"},
        {"status": Status.CANCELLED, "error": ""},
        {"status": Status.CANCELLED, "superseded_by": "6f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9"},
        {"status": Status.REJECTED, "error": "Rejected: " + "too dark & noisy " * 20},
        {"status": Status.AWAITING_REVIEW, "progress": 100,
         "started_at": now - dt.timedelta(minutes=10), "finished_at": now},
        {"status": Status.COMPLETED, "user": None, "mac_username": "", "client": "bravo <api>",
         "project_path": "", "engine": "nexrender"},
        {"status": Status.COMPLETED, "user": None, "mac_username": "", "client": ""},
    ]
    jobs = []
    for i, spec in enumerate(specs):
        fields = {**base, "path_key": f"p{i}", **spec}
        created = fields.pop("created_at", now - dt.timedelta(minutes=i))
        job = Job.objects.create(**fields)
        Job.objects.filter(pk=job.pk).update(created_at=created)
        jobs.append(job)
    return list(Job.objects.select_related("user", "node").order_by("-created_at"))


def squeeze(html: str) -> str:
    """Runs of whitespace as one space: what a browser renders the same."""
    return re.sub(r"\s+", " ", html).strip()


@pytest.mark.parametrize("is_admin", [True, False])
@pytest.mark.parametrize("oob", [False, True])
def test_a_row_in_python_is_the_row_template(user, is_admin, oob):
    jobs = variants(user)
    page_forecast = forecast.for_page(jobs)
    engine = engines["django"]
    context = {"is_admin": is_admin, "forecast": page_forecast, "oob": oob}
    for job in jobs:
        expected = engine.from_string(REFERENCE).render({**context, "job": job})
        one = engine.from_string("{% load job_rows %}{% job_row job %}").render(
            {**context, "job": job})
        assert squeeze(one) == squeeze(expected), job.status
        # Exactly, but for blank lines: what the page's HTML looks like too.
        assert re.sub(r"\n\s*\n", "\n", one) == re.sub(r"\n\s*\n", "\n", expected), job.status
    page = engine.from_string("{% load job_rows %}{% job_rows jobs %}").render(
        {**context, "jobs": jobs})
    reference = engine.from_string(
        "{% for job in jobs %}{% include row %}{% endfor %}").render(
        {**context, "jobs": jobs, "row": engine.from_string(REFERENCE)})
    assert squeeze(page) == squeeze(reference)
    assert page.count("<tr ") == len(jobs) == 20
    # Every branch of the row was compared (not only the plain ones).
    for part in ('class="thumb"', 'class="eta small muted"', "problem-retry", "problem-failed",
                 "Cause code", "superseded-link", "problem-rejected", "live-only", "elapsed",
                 "Waiting for a render node", "Accepted", "Preview ready", "node-&lt;1&gt;",
                 "min ago", "title=\"Render"):
        assert part in reference, part
    assert ("bravo &lt;api&gt;" in reference) is is_admin
    assert ("cell-user" in page) is is_admin and ('hx-swap-oob="true"' in page) is oob


def test_the_row_template_is_the_python_row(user):
    """templates/jobs/_row.html (live pushes, the review page) is the same row."""
    job = variants(user)[0]
    from django.template.loader import render_to_string

    html = render_to_string("jobs/_row.html", {"job": job, "is_admin": True, "forecast": None})
    assert html.startswith(f'<tr id="job-{job.pk}"') and html.endswith("</tr>\n")

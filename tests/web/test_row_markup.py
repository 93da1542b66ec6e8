"""The job list's rows rendered in Python (jobs.templatetags.job_rows, issue #14: the
template engine spent two thirds of a page on them) give the markup the row template
gave: tests/web/reference/job_row.html is that template, with the status, progress,
estimate and problem templates the job page still includes. Jobs in every state, as an
admin and as a user, with and without a live push's ``oob``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.template import engines

from jobs import forecast
from tests.helpers.job_variants import variants

pytestmark = pytest.mark.django_db

REFERENCE = (Path(__file__).parent / "reference" / "job_row.html").read_text()


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

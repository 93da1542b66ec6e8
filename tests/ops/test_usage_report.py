"""The usage report: render minutes, renders and cost per user, API client and project.

Renders end through the lifecycle as a worker ends them; the report must add
up to the jobs' own times, and outlive the jobs (retention).
"""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from jobs import lifecycle
from jobs.models import Job, RenderNode, Status
from jobs.node import retention
from systemadmin.models import UsageDay

pytestmark = pytest.mark.django_db(transaction=True)

SPOT = "D:\\Dropbox\\acme\\spot.aep"
TRAILER = "D:\\Dropbox\\globex\\trailer.aep"


def render(user, client, path, seconds, outcome=Status.COMPLETED, node=None):
    """One render attempt of ``seconds`` ending in ``outcome``."""
    node = node or RenderNode.objects.get_or_create(name="render-01")[0]
    job = Job.objects.filter(path_key=path.casefold(), status=Status.QUEUED).first() or \
        Job.objects.create(user=user, client=client, status=Status.QUEUED, project_path=path,
                           path_key=path.casefold())
    claim = lifecycle.claim_next(node)
    assert claim.pk == job.pk
    Job.objects.filter(pk=job.pk).update(
        started_at=timezone.now() - timedelta(seconds=seconds))
    if outcome == Status.COMPLETED:
        lifecycle.complete(job.pk, claim.lease, output_path="D:\\o.mp4", output_size=1)
    elif outcome == Status.AWAITING_REVIEW:
        assert lifecycle.preview_ready(job.pk, claim.lease)
    elif outcome == "retry":
        assert lifecycle.render_crashed(job.pk, claim.lease, "crash") == Status.QUEUED
    else:
        lifecycle.cancel(job.pk, actor="admin@studio.test")
    return Job.objects.get(pk=job.pk)


@pytest.fixture
def renders(user, other_user):
    """alice: spot twice through bravo (one crashed attempt first); bob: the trailer
    through the plugin, then a render he cancelled."""
    done = [
        render(user, "bravo", SPOT, 120, "retry"),
        render(user, "bravo", SPOT, 300),
        render(user, "bravo", SPOT, 240),
        render(other_user, "plugin", TRAILER, 600),
    ]
    render(other_user, "plugin", TRAILER, 60, Status.CANCELLED)
    return [job for job in done if job.status == Status.COMPLETED]


def report(client, **params):
    response = client.get("/api/reports/usage", params)
    assert response.status_code == 200, response.content
    return response.json()


def test_the_report_adds_up_the_renders_per_user(admin_client, renders, user, other_user):
    data = report(admin_client, group="user")
    rows = {row["key"]: row for row in data["rows"]}
    alice, bob = rows[str(user.pk)], rows[str(other_user.pk)]
    job_minutes = {job.pk: (job.finished_at - job.started_at).total_seconds() / 60
                   for job in renders}
    alices = [job for job in renders if job.user_id == user.pk]
    assert alice["renders"] == 2
    assert alice["render_minutes"] == pytest.approx(sum(job_minutes[j.pk] for j in alices),
                                                    abs=0.02)
    assert alice["render_minutes"] == pytest.approx(9, abs=0.05)
    assert (alice["failed_renders"], alice["failed_minutes"]) == (1, pytest.approx(2, abs=0.05))
    assert alice["label"] == "Alice Artist <alice@studio.test>"
    assert (bob["renders"], bob["failed_renders"]) == (1, 1)
    assert bob["render_minutes"] == pytest.approx(10, abs=0.05)
    # Most render time first, and a total that is the sum of the rows.
    assert [row["key"] for row in data["rows"]] == [str(other_user.pk), str(user.pk)]
    assert data["total"]["renders"] == 3
    assert data["total"]["render_minutes"] == pytest.approx(19, abs=0.05)
    assert data["total"]["failed_renders"] == 2
    assert data["currency"] is None and data["total"]["cost"] is None


def test_per_client_and_per_project(admin_client, renders):
    clients = {row["label"]: row for row in report(admin_client, group="client")["rows"]}
    assert set(clients) == {"bravo", "plugin"}
    assert clients["bravo"]["renders"] == 2 and clients["plugin"]["renders"] == 1
    projects = {row["label"]: row for row in report(admin_client, group="project")["rows"]}
    assert set(projects) == {SPOT, TRAILER}
    assert projects[SPOT]["render_minutes"] == pytest.approx(9, abs=0.05)


def test_cost_at_the_configured_rate(admin_client, renders, settings):
    settings.RENDER_COST_PER_MINUTE = Decimal("0.50")
    settings.RENDER_COST_CURRENCY = "EUR"
    data = report(admin_client, group="client")
    assert data["currency"] == "EUR"
    bravo = next(row for row in data["rows"] if row["label"] == "bravo")
    assert bravo["cost"] == pytest.approx(4.5, abs=0.02)
    assert data["total"]["cost"] == pytest.approx(9.5, abs=0.02)


def test_the_report_outlives_the_jobs(admin_client, renders, settings):
    before = report(admin_client, group="project")
    settings.JOB_RETENTION_DAYS = 1
    Job.objects.update(finished_at=timezone.now() - timedelta(days=3))
    assert retention.purge().jobs == 4
    assert not Job.objects.exists()
    assert report(admin_client, group="project") == before


def test_days_outside_the_range_are_left_out(admin_client, renders, user):
    today = timezone.localdate()
    UsageDay.objects.create(day=today - timedelta(days=40), group="user", key=str(user.pk),
                            label="alice@studio.test", renders=7, seconds=7 * 60)
    recent = report(admin_client, group="user")
    assert recent["from"] == today.replace(day=1).isoformat()
    assert recent["to"] == today.isoformat()
    assert recent["total"]["renders"] == 3
    wide = report(admin_client, group="user", **{"from": (today - timedelta(days=60)).isoformat(),
                                                 "to": today.isoformat()})
    assert wide["total"]["renders"] == 10
    old = report(admin_client, group="user", **{"from": (today - timedelta(days=45)).isoformat(),
                                                "to": (today - timedelta(days=30)).isoformat()})
    assert [(row["renders"], row["render_minutes"]) for row in old["rows"]] == [(7, 7.0)]


def test_a_csv_download_for_spreadsheets(admin_client, renders, settings):
    settings.RENDER_COST_PER_MINUTE = Decimal("1")
    settings.RENDER_COST_CURRENCY = "USD"
    response = admin_client.get("/api/reports/usage", {"group": "project", "format": "csv"})
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="usage-by-project-')
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0] == ["project", "key", "renders", "render minutes", "cost (USD)",
                       "failed renders", "failed minutes"]
    assert rows[-1][0] == "Total" and rows[-1][2] == "3"
    assert float(rows[-1][3]) == pytest.approx(19, abs=0.05)
    assert float(rows[-1][4]) == pytest.approx(19, abs=0.05)
    assert {row[0] for row in rows[1:-1]} == {SPOT, TRAILER}


@pytest.mark.parametrize("params", [{"group": "team"}, {"from": "2026-13-01"},
                                    {"from": "yesterday"}, {"to": "2026-02-30"},
                                    {"from": "2026-03-10", "to": "2026-03-01"},
                                    {"from": "1900-01-01", "to": "2026-01-01"},
                                    {"format": "xml"}])
def test_bad_parameters_are_a_400_naming_them(admin_client, params):
    response = admin_client.get("/api/reports/usage", params)
    assert response.status_code == 400, response.content
    assert set(response.json()["errors"]) <= {"group", "from", "to", "format"}


def test_only_admin_sessions_see_usage(user_client, api_client, db):
    for client in (APIClient(), user_client, api_client):
        assert client.get("/api/reports/usage").status_code == 403


def test_the_usage_page(browser_admin, browser_user, renders):
    page = browser_admin.get("/system/usage?group=client")
    assert page.status_code == 200
    html = page.content.decode()
    assert "<th scope=\"row\" class=\"usage-label\"><bdi>bravo</bdi></th>" in html
    assert 'id="usage-total"' in html
    assert "/api/reports/usage?group=client" in html and "format=csv" in html
    bad = browser_admin.get("/system/usage?from=nonsense")
    assert bad.status_code == 200 and "A day as YYYY-MM-DD." in bad.content.decode()
    assert browser_user.get("/system/usage").status_code == 403
    assert 'href="/system/usage"' in browser_admin.get("/system").content.decode()


def test_a_review_preview_is_a_render_too(admin_client, user):
    render(user, "bravo", SPOT, 90, Status.AWAITING_REVIEW)
    [row] = report(admin_client, group="client")["rows"]
    assert (row["renders"], row["failed_renders"]) == (1, 0)
    assert row["render_minutes"] == pytest.approx(1.5, abs=0.02)

"""Rows you can tell apart: composition, node, the cause of a failure first, cancelled
rows as cancelled with the job that replaced them; counts on the tabs; search by id,
composition and person; "just now"."""

from __future__ import annotations

import datetime as dt
import re
import uuid

import pytest
from django.test import Client
from django.utils import timezone

from jobs import lifecycle
from jobs.models import Job, RenderNode, Status
from jobs.templatetags.jobs_tags import ago
from jobs.web.filters import COUNT_CAP, JobFilter, tab_counts
from tests.helpers.common import signed_in

pytestmark = pytest.mark.django_db

MISSING = ("Failed after 3 attempt(s): After Effects: Unable to Render: File Not Found "
           "D:\\footage\\hero.mov\nThe project uses footage that is not on the render node.")


def job(user, status=Status.QUEUED, minutes_ago=5, **fields) -> Job:
    fields.setdefault("project_path", f"projects/{uuid.uuid4().hex[:6]}.aep")
    fields.setdefault("config", {"template": {"composition": "Main"}})
    return Job.objects.create(user=user, status=status, mac_username=user.username,
                              created_at=timezone.now() - dt.timedelta(minutes=minutes_ago),
                              **fields)


def row_of(page: str, job_id) -> str:
    match = re.search(rf'<tr id="job-{job_id}".*?</tr>', page, re.S)
    assert match, f"no row for {job_id}"
    return match.group(0)


def plain(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip()


def test_a_row_names_its_composition_and_render_node(browser_user, user):
    node = RenderNode.objects.create(name="render-07")
    rendering = job(user, Status.RENDERING, node=node, started_at=timezone.now(),
                    config={"template": {"composition": "Story 9x16"}})

    row = row_of(browser_user.get("/").content.decode(), rendering.pk)

    assert "Story 9x16" in plain(row) and "render-07" in plain(row)
    assert 'data-label="Node"' in row


def test_a_failure_leads_with_its_cause_and_shows_all_of_it_one_click_away(browser_user, user):
    failed = job(user, Status.FAILED, error=MISSING, error_code="missing_footage")

    row = row_of(browser_user.get("/").content.decode(), failed.pk)

    summary = re.search(r"<summary>(.*?)</summary>", row, re.S).group(1)
    assert plain(summary).replace(" :", ":").startswith(
        "Missing footage: After Effects: Unable to Render")
    assert "Failed after 3 attempt(s)" not in summary  # the count is not the cause
    full = re.search(r'<div class="problem-full">(.*?)</div>\s*</details>', row, re.S).group(1)
    assert "not on the render node" in full and "missing_footage" in full


def test_cancelled_rows_are_not_errors_and_link_the_job_that_replaced_them(browser_user, user):
    first = lifecycle.submit(actor="api:bravo", user=user, client="bravo",
                             project_path="projects/a.aep", path_key="k-a",
                             config={"template": {"composition": "Main"}}).job
    second = lifecycle.submit(actor="api:bravo", user=user, client="bravo",
                              project_path="projects/a.aep", path_key="k-a",
                              config={"template": {"composition": "Main"}})
    assert second.superseded == [first.pk]

    page = browser_user.get("/").content.decode()
    row = row_of(page, first.pk)
    assert 'class="job-row tone-cancelled"' in row
    assert "problem-failed" not in row and "status-failed" not in row
    assert f'href="/jobs/{second.job.pk}" class="superseded-link"' in row
    detail = browser_user.get(f"/jobs/{first.pk}").content.decode()
    callout = re.search(r'<div class="(callout[^"]*)" id="job-failure"', detail).group(1)
    assert callout == "callout note-cancelled" and 'role="alert"' not in detail
    assert f'href="/jobs/{second.job.pk}" class="superseded-link"' in detail


def test_a_retried_attempt_shows_why_it_failed_while_it_waits(browser_user, user):
    retrying = job(user, Status.QUEUED, attempts=1, error_code="ae_busy",
                   error="Attempt 1 of 3 failed: After Effects: can not render\nBusy.")

    row = plain(row_of(browser_user.get("/").content.decode(), retrying.pk))

    assert "Attempt 1 failed: after effects was busy" in row


def test_new_rows_say_just_now():
    now = timezone.now()
    assert ago(now - dt.timedelta(seconds=5), now) == "just now"
    assert ago(now - dt.timedelta(minutes=7), now) == "7 min ago"
    assert ago(now - dt.timedelta(hours=3), now) == "3 h ago"
    assert ago(now - dt.timedelta(hours=30), now) == "yesterday"


def test_the_tabs_count_their_jobs(browser_user, user, other_user):
    for status in (Status.RENDERING, Status.QUEUED, Status.QUEUED, Status.FAILED,
                   Status.COMPLETED, Status.COMPLETED, Status.COMPLETED):
        job(user, status)
    job(other_user, Status.FAILED)  # not Alice's: not counted for her

    page = browser_user.get("/").content.decode()

    counts = dict(re.findall(r'data-tab="(\w+)"[^>]*>[^<]*<span class="count" '
                             r'data-count="(\d+)"', page))
    assert counts == {"all": "7", "active": "3", "waiting": "2", "rendering": "1",
                      "review": "0", "completed": "3", "failed": "1", "rejected": "0",
                      "cancelled": "0"}
    assert ">7 jobs<" in page.replace("\n", "")
    # Under other filters the tabs count what those filters find.
    searched = browser_user.get("/?status=failed&q=nothing-matches").content.decode()
    assert 'data-tab="failed" aria-current="true">Failed <span class="count" data-count="0"' \
        in searched


def test_tab_counts_are_capped_at_large_numbers(user, settings):
    Job.objects.bulk_create([Job(user=user, status=Status.COMPLETED)
                             for _ in range(COUNT_CAP + 5)])
    counts = tab_counts(JobFilter({}, user))
    assert counts["completed"] == (COUNT_CAP, True, False)
    assert counts["all"] == (COUNT_CAP, True, False)
    assert counts["failed"] == (0, False, False)


def test_search_by_job_id_composition_and_person(admin, user, other_user):
    mine = job(user, config={"template": {"composition": "Holiday Story"}})
    bobs = job(other_user, config={"template": {"composition": "Main"}})
    other = job(user)
    client = signed_in(Client(), admin)

    def found(q):
        return set(re.findall(r'<tr id="job-([0-9a-f-]{36})"',
                              client.get("/", {"q": q}).content.decode()))

    assert found(str(mine.pk)) == {str(mine.pk)}
    assert found(str(mine.pk)[:8]) == {str(mine.pk)}  # the short id the pages show
    assert found(mine.pk.hex[:10].upper()) == {str(mine.pk)}
    assert found("holiday story") == {str(mine.pk)}
    assert found("Builder") == {str(bobs.pk)}  # a person's name
    assert found("bob@studio") == {str(bobs.pk)}
    assert str(other.pk) not in found("holiday")


def test_a_person_finds_only_their_own_jobs_by_name(browser_user, user, other_user):
    job(other_user)
    page = browser_user.get("/", {"q": "Bob"}).content.decode()
    assert "<tr id=\"job-" not in page


def test_the_empty_state_is_there_for_the_first_live_row_to_hide(browser_user, user):
    empty = browser_user.get("/").content.decode()
    job(user)
    full = browser_user.get("/").content.decode()

    # Present in both: CSS shows it only while the table has no row (a live row
    # arriving needs no server-side delete of an element the page may not have; the
    # browser test sees it disappear).
    assert 'id="jobs-empty"' in empty and 'id="jobs-empty"' in full


def test_the_skip_link_comes_first_and_leads_to_the_list(browser_user, user):
    job(user)
    page = browser_user.get("/").content.decode()
    assert page.index('class="skip-link" href="#job-list"') < page.index('class="topbar"')
    assert 'id="job-list" tabindex="-1"' in page

"""What the job list costs does not grow with the jobs on it, and its counts stay honest:
capped where they stop, a lower bound for a large search, never counting jobs the
reader may not see (bench/job_list.py measures the time at 100 000 and 1 000 000 jobs)."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from jobs import forecast
from jobs.models import Job, RenderNode, Status
from jobs.web import filters
from jobs.web.filters import JobFilter, tab_counts

pytestmark = pytest.mark.django_db

# A page's mix: every kind of row (a node, a failure, a cancellation, ETAs).
MIX = [Status.COMPLETED, Status.FAILED, Status.CANCELLED, Status.QUEUED, Status.RENDERING,
       Status.PENDING, Status.VALIDATING, Status.REJECTED, Status.AWAITING_REVIEW]


def words(page: str) -> str:
    """A page's text, one space between words."""
    return " ".join(re.sub(r"<[^>]+>", " ", page).split())


def make_jobs(user, n: int, composition: str = "Main", hours_ago: int = 0) -> None:
    node, _ = RenderNode.objects.get_or_create(name="node-1")
    now = timezone.now() - dt.timedelta(hours=hours_ago)
    Job.objects.bulk_create([
        Job(user=user, status=MIX[i % len(MIX)], mac_username=user.username,
            project_path=f"projects/p{i}.aep", path_key=f"projects/p{i}.aep#{i}",
            composition=composition,
            config={"template": {"composition": composition}},
            node=node if MIX[i % len(MIX)] == Status.RENDERING else None,
            error="aerender Error: missing footage" if MIX[i % len(MIX)] == Status.FAILED
            else "", created_at=now - dt.timedelta(seconds=i))
        for i in range(n)])


def queries_for(client, url: str, owner, n: int) -> int:
    """Queries of ``url`` with ``n`` more jobs, submitted since the queue forecast was
    built (the case that reads each job's own row: jobs.forecast.for_page)."""
    forecast.forget()
    forecast.current()
    make_jobs(owner, n)
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200
    return len(captured.captured_queries)


@pytest.mark.parametrize("url", ["/", "/?status=active", "/?status=failed", "/?q=main"])
def test_the_list_costs_the_same_queries_with_10_or_50_rows(browser_admin, admin, url):
    few = queries_for(browser_admin, url, admin, 10)
    many = queries_for(browser_admin, url, admin, 60)

    assert many == few, "a query per row (N+1) on the job list"


def test_the_status_sort_reads_at_most_a_query_per_status(browser_admin, admin):
    few = queries_for(browser_admin, "/?sort=status", admin, 10)
    many = queries_for(browser_admin, "/?sort=status", admin, 60)

    # One keyset query per status until the page is full: fewer with more jobs.
    assert many <= few


def test_the_tabs_are_counted_in_one_query(browser_user, user):
    make_jobs(user, 20)
    with CaptureQueriesContext(connection) as captured:
        tab_counts(JobFilter({}, user))
    assert len(captured.captured_queries) == 1


def test_a_user_is_never_counted_anyone_elses_jobs(browser_user, user, other_user):
    make_jobs(other_user, 30)
    make_jobs(user, 2)  # a completed job and a failed one

    counts = tab_counts(JobFilter({}, user))
    assert counts["all"] == (2, False, False)
    assert counts["completed"] == (1, False, False) and counts["failed"] == (1, False, False)
    assert counts["rendering"] == (0, False, False)
    # Searching for what only the other person's jobs hold finds and counts nothing.
    page = browser_user.get("/", {"q": "p29"}).content.decode()
    assert "<tr id=\"job-" not in page
    assert re.search(r'data-tab="all"[^>]*>All <span class="count" data-count="0">0<', page)


def test_capped_tabs_say_more_than_and_exact_ones_do_not(user, monkeypatch):
    monkeypatch.setattr(filters, "COUNT_CAP", 5)
    make_jobs(user, 18)  # two of each status

    counts = tab_counts(JobFilter({}, user))
    assert counts["completed"] == (2, False, False)
    # active: pending, validating, queued, rendering, awaiting review: 10 > 5
    assert counts["active"] == (5, True, False)
    assert counts["all"] == (5, True, False)


def test_a_large_search_shows_lower_bounds_from_its_newest_matches(user, browser_user,
                                                                   monkeypatch):
    monkeypatch.setattr(filters, "COUNT_CAP", 5)
    make_jobs(user, 4, composition="Holiday", hours_ago=1)
    counts = tab_counts(JobFilter({"q": "holiday"}, user))
    assert counts["all"] == (4, False, False)  # few matches: exact

    make_jobs(user, 18, composition="Holiday Special")  # newer than the first four
    counts = tab_counts(JobFilter({"q": "holiday"}, user))
    # 22 match; the newest 6 are one of each of the first six statuses of MIX: each
    # count is what they hold, marked as "at least"; all of them pass the cap.
    assert counts["all"] == (5, True, False)
    assert counts["completed"] == (1, True, True) and counts["failed"] == (1, True, True)
    assert counts["rejected"] == (0, True, True)
    page = browser_user.get("/", {"q": "holiday"}).content.decode()
    assert 'data-count="1">1+</span>' in page
    assert "More than 5 jobs match these filters" in words(page)


def test_a_count_from_a_searchs_sample_says_at_least_not_more_than(user, browser_user,
                                                                   monkeypatch):
    monkeypatch.setattr(filters, "COUNT_CAP", 5)
    now = timezone.now()
    Job.objects.bulk_create(
        [Job(user=user, status=Status.FAILED, composition="Holiday", created_at=now)]
        + [Job(user=user, status=Status.COMPLETED, composition="Holiday",
               created_at=now - dt.timedelta(minutes=i + 1)) for i in range(6)])

    # 7 match, more than the cap: the newest 6 are counted, which hold the one failure
    # there is. "More than 1" would be false; the count is a lower bound.
    failed = words(browser_user.get("/", {"q": "holiday", "status": "failed"}).content.decode())
    assert "At least 1 job match these filters" in failed and "More than" not in failed
    everything = words(browser_user.get("/", {"q": "holiday"}).content.decode())
    assert "More than 5 jobs match these filters" in everything  # 6 counted: that is true


@pytest.mark.parametrize("url", ["/api/jobs", "/api/jobs?status=QUEUED"])
def test_the_api_list_costs_the_same_queries_with_10_or_50_jobs(admin_client, admin, url):
    few = queries_for(admin_client, url, admin, 10)
    many = queries_for(admin_client, url, admin, 90)

    assert many == few, "a query per job (N+1) in GET /api/jobs"


@pytest.mark.parametrize("sort", ["newest", "oldest", "priority", "status"])
def test_a_search_among_one_persons_jobs_pages_in_the_same_order(user, admin, sort):
    """A user's search (and an admin's with a user filter) is sorted by an expression
    no index follows (filters.restricted_search: the database narrows to the person's
    matches first): the same rows, in the same order, page after page."""
    make_jobs(user, 130, composition="Holiday")
    make_jobs(admin, 40, composition="Holiday", hours_ago=1)
    Job.objects.filter(project_path__endswith="7.aep").update(priority=5)
    for reader, params in [(user, {"q": "holi"}), (admin, {"q": "holi", "user": str(user.pk)})]:
        found, cursor = [], None
        while True:
            query = {**params, "sort": sort, **({"after": cursor} if cursor else {})}
            flt = JobFilter(query, reader)
            assert filters.restricted_search(flt)
            with CaptureQueriesContext(connection) as captured:
                rows, cursor = filters.page_of_jobs(flt)
            assert "COALESCE" in captured.captured_queries[-1]["sql"]
            found += rows
            if not cursor:
                break
        unfenced = JobFilter({**params, "sort": sort}, reader)
        assert [j.pk for j in found] == [j.pk for j in expected_order(unfenced)]
        assert {j.user_id for j in found} == {user.pk} and len(found) == 130
    assert not filters.restricted_search(JobFilter({"q": "holi"}, admin))
    assert not filters.restricted_search(JobFilter({}, user))


def expected_order(flt: JobFilter) -> list[Job]:
    """Every match of ``flt`` in its sort's order, by the index-following ORDER BY."""
    keys = filters.SORTS[flt.sort][1]
    jobs = flt.queryset()
    if flt.sort == "status":
        return [job for status in filters.STATUS_RANK
                for job in jobs.filter(status=status).order_by("-created_at", "-id")]
    return list(jobs.order_by(*[("-" if desc else "") + field for field, desc in keys]))

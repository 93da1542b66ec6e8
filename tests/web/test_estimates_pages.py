"""Estimates on the dashboard: "#2 in queue · starts ~14:05 · done ~14:32" in the
list and on the job page, kept live when the queue moves."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.utils import timezone

from jobs import forecast, lifecycle
from jobs.models import Job, RenderNode, Status
from tests.web.test_live import WAIT, receive_until, run, socket

pytestmark = pytest.mark.django_db(transaction=True)

ETA = re.compile(r'id="eta-(?P<id>[0-9a-f-]+)"[^>]*>(?P<text>[^<]*)<')


def queued(user, n, frames=60, age=0):
    path = f"D:\\Dropbox\\spot{n}.aep"
    return Job.objects.create(user=user, status=Status.QUEUED, project_path=path,
                              path_key=path.casefold(), frames_total=frames,
                              config={"template": {"composition": "Main"}},
                              created_at=timezone.now() - timedelta(seconds=100 - n + age))


def hhmm(when) -> str:
    return f"{timezone.localtime(when):%H:%M}"


def etas(html: str) -> dict[str, str]:
    return {m["id"]: m["text"] for m in ETA.finditer(html)}


def test_list_rows_show_queue_place_and_times(browser_user, user):
    RenderNode.objects.create(name="render-01")
    first, second = queued(user, 1), queued(user, 2)
    done = Job.objects.create(user=user, status=Status.COMPLETED, project_path="D:\\x.aep")

    shown = etas(browser_user.get("/").content.decode())

    ahead = forecast.estimate_for(first)
    assert shown[str(first.pk)] == (f"#1 in queue · starts ~{hhmm(ahead.starts_at)} · "
                                    f"done ~{hhmm(ahead.finishes_at)}")
    assert shown[str(second.pk)].startswith(f"#2 in queue · starts ~{hhmm(ahead.finishes_at)}")
    assert str(done.pk) not in shown


def test_the_job_page_says_what_the_estimate_stands_on(browser_user, user, settings):
    from decimal import Decimal

    settings.RENDER_COST_PER_MINUTE = Decimal("2")
    settings.RENDER_COST_CURRENCY = "EUR"
    job = queued(user, 1, frames=90)
    html = browser_user.get(f"/jobs/{job.pk}").content.decode()
    estimate = re.search(r'<div id="job-estimate" class="estimate">(.*?)</div>', html, re.S)
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", estimate.group(1))).strip()
    assert text == ("#1 in queue · ≈ 1 min 30 s to render Render ≈ 1 min 30 s · "
                    "No history: default rate of 1 s per frame; no render node is up · "
                    "about 3.00 EUR")


def test_a_waiting_job_is_placed_as_if_it_joined_the_queue_now(browser_user, user):
    RenderNode.objects.create(name="render-01")
    job = Job.objects.create(user=user, status=Status.VALIDATING, project_path="D:\\v.aep",
                             frames_total=30)
    assert etas(browser_user.get("/").content.decode())[str(job.pk)].startswith(
        "After checks: starts ~")


def test_a_job_awaiting_review_is_placed_as_if_approved_now(browser_user, user):
    RenderNode.objects.create(name="render-01")
    job = Job.objects.create(user=user, status=Status.AWAITING_REVIEW, review=True,
                             needs_preview=True, project_path="D:\\r.aep", frames_total=30)
    assert etas(browser_user.get("/").content.decode())[str(job.pk)].startswith(
        "If approved now: starts ~")


def test_etas_move_live_when_the_queue_moves(user, other_user):
    node = RenderNode.objects.create(name="render-01")
    queued(user, 1)
    second = queued(user, 2)
    bobs = queued(other_user, 3)

    async def scenario():
        page = socket("/ws/jobs", user)
        detail = socket(f"/ws/jobs/{second.pk}", user)
        assert (await page.connect())[0]
        assert (await detail.connect())[0]

        # The first job starts: the second is next, Bob's moves up behind it.
        await database_sync_to_async(lifecycle.claim_next)(node)

        seen = ""
        while not etas(seen).get(str(second.pk), "").startswith("#1 in queue · starts ~"):
            seen = await receive_until(page, f'id="eta-{second.pk}"')
            assert str(bobs.pk) not in seen  # Alice's page, Bob's job
        update = ""
        while "#1 in queue" not in update:
            update = await receive_until(detail, 'id="job-estimate"', timeout=WAIT)
        await page.disconnect()
        await detail.disconnect()

    run(scenario)

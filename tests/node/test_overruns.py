"""A render past twice its estimate: one warning on the job, one admin-channel message."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import TestCase
from django.utils import timezone

from jobs import lifecycle
from jobs.models import Job, JobEvent, RenderNode, Status
from jobs.node import housekeeping, overruns
from jobs.notify import slack as notifications
from systemadmin.models import SystemEvent
from tests.helpers.fakeslack import FakeSlack

pytestmark = pytest.mark.django_db(transaction=True)

PATH = "D:\\Dropbox\\spot.aep"
ADMIN_CHANNEL = "#render-alerts"


@pytest.fixture
def slack(settings):
    with FakeSlack() as fake:
        settings.SLACK_BOT_TOKEN = "xoxb-test"
        settings.SLACK_API_URL = fake.url
        settings.SLACK_ADMIN_CHANNEL = ADMIN_CHANNEL
        yield fake


def job_of(user, **fields):
    return Job.objects.create(user=user, status=Status.QUEUED, project_path=PATH,
                              path_key=PATH.casefold(), name="spot.aep", frames_total=100,
                              config={"template": {"composition": "Main"}}, **fields)


def history(user, node, renders=3, seconds=100):
    for _ in range(renders):
        job = job_of(user)
        claim = lifecycle.claim_next(node)
        Job.objects.filter(pk=job.pk).update(
            started_at=timezone.now() - timedelta(seconds=seconds), render_seconds=seconds)
        # The history is written after the completion commits.
        with TestCase.captureOnCommitCallbacks(execute=True):
            lifecycle.complete(job.pk, claim.lease, output_path="D:\\o.mp4", output_size=1)


def rendering(user, node):
    job = job_of(user)
    lifecycle.claim_next(node)
    return job


def test_a_render_past_twice_its_estimate_is_warned_about_once(user, slack):
    node = RenderNode.objects.create(name="render-01")
    history(user, node)
    job = rendering(user, node)
    started = Job.objects.get(pk=job.pk).started_at

    assert overruns.check(now=started + timedelta(seconds=150)) == []  # late, not twice
    assert overruns.check(now=started + timedelta(seconds=201)) == [job.pk]
    # Every node runs the check: the second one finds it done.
    assert overruns.check(now=started + timedelta(seconds=400)) == []

    job.refresh_from_db()
    [warning] = job.warnings
    assert warning["code"] == "render_overrun"
    assert warning["message"].startswith("Rendering for 3 min 21 s, more than twice its "
                                         "estimate of 1 min 40 s (median of 3 renders of "
                                         "this composition")
    assert JobEvent.objects.filter(job=job, kind="render_overrun").count() == 1
    assert notifications.dispatcher.flush(10)
    [alert] = slack.texts(ADMIN_CHANNEL)
    assert f"Render spot.aep ({job.pk}) on render-01: Rendering for 3 min 21 s" in alert
    assert f"/jobs/{job.pk}" in alert
    assert SystemEvent.objects.filter(kind="render_overrun").count() == 1
    # The job renders on: a warning is not a failure.
    assert job.status == Status.RENDERING


def test_a_guess_is_not_an_estimate_to_overrun(user, slack):
    node = RenderNode.objects.create(name="render-01")
    job = rendering(user, node)  # no history: the default rate
    started = Job.objects.get(pk=job.pk).started_at
    assert overruns.check(now=started + timedelta(hours=5)) == []
    assert Job.objects.get(pk=job.pk).warnings == []


def test_short_renders_need_a_real_excess(user):
    node = RenderNode.objects.create(name="render-01")
    history(user, node, seconds=10)
    job = rendering(user, node)
    started = Job.objects.get(pk=job.pk).started_at
    # Three times 10 s, but only 20 s too long: startup noise, not a hang.
    assert overruns.check(now=started + timedelta(seconds=30)) == []
    assert overruns.check(now=started + timedelta(seconds=75)) == [job.pk]


def test_warnings_keep_what_was_there_and_skip_finished_jobs(user):
    node = RenderNode.objects.create(name="render-01")
    job = rendering(user, node)
    Job.objects.filter(pk=job.pk).update(
        warnings=[{"code": "missing_fonts", "message": "Arial"}])
    assert lifecycle.warn(job.pk, "render_overrun", "slow", status=Status.RENDERING)
    assert not lifecycle.warn(job.pk, "render_overrun", "slow again")
    assert [w["code"] for w in Job.objects.get(pk=job.pk).warnings] == ["missing_fonts",
                                                                        "render_overrun"]
    lifecycle.cancel(job.pk, actor="admin@studio.test")
    assert not lifecycle.warn(job.pk, "other", "late", status=Status.RENDERING)


def test_the_check_is_a_render_node_chore():
    assert ("overrun check", overruns.CHECK_SECONDS, overruns.check) in housekeeping.CHORES

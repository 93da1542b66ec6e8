"""The profile's notification settings (per event, Slack and this browser) and the
person's numbers for the last 7 and 30 days."""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid

import pytest
from channels.db import database_sync_to_async
from django.utils import timezone

from accounts.models import NOTIFY_DEFAULTS
from accounts.views import render_stats
from jobs import lifecycle
from jobs.models import Job, Status
from jobs.notify import slack as notifications
from tests.helpers.common import wait_for
from tests.helpers.fakeslack import FakeSlack
from tests.web.test_live import refusal, run, socket

TOKEN = "xoxb-test-token"


def save(page, **checked):
    return page.post("/profile/notifications", {key: "on" for key in checked})


@pytest.mark.django_db
def test_the_settings_are_saved_per_event_and_channel(browser_user, user):
    assert user.notified("slack") == NOTIFY_DEFAULTS["slack"]  # as it always was
    assert user.notified("browser") == []

    response = save(browser_user, **{"slack-failed": True, "browser-completed": True,
                                     "browser-preview": True, "browser-nonsense": True})

    assert response.status_code == 302
    user.refresh_from_db()
    assert user.notified("slack") == ["failed"]
    assert user.notified("browser") == ["completed", "preview"]
    page = browser_user.get("/profile").content.decode()
    boxes = dict(re.findall(r'<input type="checkbox" name="([\w-]+)" id="[\w-]+" ?(\w*)',
                            page))
    assert boxes["slack-failed"] == "checked" and boxes["slack-started"] == ""
    assert boxes["browser-completed"] == "checked" and boxes["browser-started"] == ""


@pytest.mark.django_db
def test_slack_dms_follow_the_settings(settings, user):
    with FakeSlack() as fake:
        settings.SLACK_BOT_TOKEN = TOKEN
        settings.SLACK_API_URL = fake.url
        user.slack_user_id = "U123"
        user.notifications = {"slack": ["failed"]}
        user.save()
        lease = uuid.uuid4()
        done = Job.objects.create(user=user, status=Status.RENDERING, lease=lease, name="ok")
        broken = Job.objects.create(user=user, status=Status.RENDERING, lease=lease,
                                    name="broken", attempts=3)

        for job, to in ((done, Status.COMPLETED), (broken, Status.FAILED)):
            notifications.on_transition(None, job.pk, Status.RENDERING, to, "status", "node",
                                        "")
        notifications.dispatcher.flush()

        texts = wait_for(lambda: fake.texts("DU123"), timeout=10)
        assert len(texts) == 1 and "*broken* failed" in texts[0]


@pytest.mark.django_db(transaction=True)
def test_the_browser_is_told_only_what_its_person_chose(user, other_user):
    user.notifications = {"browser": ["completed", "failed"]}
    user.save()

    async def scenario():
        mine = socket("/ws/notify", user)
        theirs = socket("/ws/notify", other_user)
        assert (await mine.connect())[0] and (await theirs.connect())[0]

        def happen():
            lease = uuid.uuid4()
            job = Job.objects.create(user=user, status=Status.QUEUED, name="spot")
            lifecycle.transition(job.pk, Status.RENDERING, allowed_from=Status.QUEUED,
                                 lease=lease)
            lifecycle.complete(job.pk, lease, output_path="spot.mov", output_size=1)
            return job

        job = await database_sync_to_async(happen)()
        news = json.loads(await mine.receive_from(timeout=5))
        # "started" was not chosen; the completion was.
        assert news["events"] == ["completed"] and news["job"] == str(job.pk)
        assert news["name"] == "spot" and news["url"] == f"/jobs/{job.pk}"
        assert await mine.receive_nothing(timeout=1)
        assert await theirs.receive_nothing(timeout=0.5)
        await mine.disconnect()
        await theirs.disconnect()

    run(scenario)


@pytest.mark.django_db(transaction=True)
def test_a_choice_changed_in_another_tab_holds_for_the_pages_already_open(browser_user,
                                                                         user):
    """The socket asks for the person's choice at each event, not once at connect."""
    async def scenario():
        mine = socket("/ws/notify", user)  # connected while nothing is chosen (the default)
        assert (await mine.connect())[0]

        def render(name, to):
            job = Job.objects.create(user=user, status=Status.QUEUED, name=name)
            lifecycle.transition(job.pk, Status.RENDERING, allowed_from=Status.QUEUED)
            lifecycle.transition(job.pk, to, allowed_from=Status.RENDERING)
            return str(job.pk)

        # Turned on in the profile, in another tab: the open page hears of it.
        await database_sync_to_async(save)(browser_user, **{"browser-completed": True})
        first = await database_sync_to_async(render)("first", Status.COMPLETED)
        news = json.loads(await mine.receive_from(timeout=5))
        assert (news["job"], news["events"]) == (first, ["completed"])

        # Switched to failures only: the next completion is not told, a failure is.
        await database_sync_to_async(save)(browser_user, **{"browser-failed": True})
        await database_sync_to_async(render)("second", Status.COMPLETED)
        third = await database_sync_to_async(render)("third", Status.FAILED)
        news = json.loads(await mine.receive_from(timeout=5))
        assert (news["job"], news["events"]) == (third, ["failed"])
        assert await mine.receive_nothing(timeout=1)
        await mine.disconnect()

    run(scenario)


# Each event a person may choose, and where the job goes for it.
EVENT_PATHS = {"started": [Status.RENDERING],
               "completed": [Status.RENDERING, Status.COMPLETED],
               "failed": [Status.RENDERING, Status.FAILED],
               "preview": [Status.RENDERING, Status.AWAITING_REVIEW]}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("event", list(EVENT_PATHS))
def test_each_event_reaches_the_browser_when_chosen_alone(user, event):
    user.notifications = {"browser": [event], "slack": []}
    user.save()

    async def scenario():
        mine = socket("/ws/notify", user)
        assert (await mine.connect())[0]

        def happen():
            job = Job.objects.create(user=user, status=Status.QUEUED, name="spot")
            before = Status.QUEUED
            for status in EVENT_PATHS[event]:
                assert lifecycle.transition(job.pk, status, allowed_from=before)
                before = status
            return job

        job = await database_sync_to_async(happen)()
        news = json.loads(await mine.receive_from(timeout=5))
        assert news["events"] == [event] and news["job"] == str(job.pk)
        assert await mine.receive_nothing(timeout=1)  # the other steps were not chosen
        await mine.disconnect()

    run(scenario)


@pytest.mark.django_db(transaction=True)
def test_nobody_signed_out_hears_anything():
    async def scenario():
        assert await refusal(socket("/ws/notify")) == 4401

    run(scenario)


@pytest.mark.django_db
def test_stats_for_the_last_7_and_30_days(user, other_user, browser_user):
    now = timezone.now()

    def job(status, days_ago, seconds=None, owner=user):
        return Job.objects.create(user=owner, status=status, render_seconds=seconds,
                                  created_at=now - dt.timedelta(days=days_ago))

    job(Status.COMPLETED, 1, 1800)
    job(Status.COMPLETED, 2, 1800)
    job(Status.FAILED, 3, 600)
    job(Status.QUEUED, 0)
    job(Status.COMPLETED, 20, 7200)
    job(Status.FAILED, 40, 99999)  # older than 30 days
    job(Status.COMPLETED, 1, 99999, owner=other_user)

    week, month = render_stats(user, 7, now), render_stats(user, 30, now)

    assert (week["renders"], week["completed"], week["failed"]) == (4, 2, 1)
    assert week["hours"] == pytest.approx(4200 / 3600)
    assert week["failure_rate"] == pytest.approx(1 / 3)
    assert (month["renders"], month["hours"]) == (5, pytest.approx(11400 / 3600))
    assert month["failure_rate"] == pytest.approx(1 / 4)
    page = browser_user.get("/profile").content.decode()
    assert 'data-days="7"' in page and 'data-days="30"' in page
    assert '<dd class="stat-failures">33%</dd>' in page
    assert '<dd class="stat-hours">3.2</dd>' in page

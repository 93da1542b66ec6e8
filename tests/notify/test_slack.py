"""Slack notifications through slack-sdk's real WebClient, over HTTP, to a local
fake Slack: DMs with the right text, admin-channel alerts, and a Slack that is
down or slow (5 s) neither failing nor delaying a render."""

from __future__ import annotations

import time
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.utils import timezone

from jobs import lifecycle
from jobs.links import check_download_signature
from jobs.models import Job, RenderNode, Status
from jobs.notify import slack as notifications
from systemadmin import chores
from systemadmin.models import SystemEvent
from tests.helpers.common import wait_for
from tests.helpers.fakeslack import FakeSlack, closed_port_url
from tests.helpers.farm import event_time, submit, use_aerender, wait_status

ADMIN_CHANNEL = "#render-alerts"
TOKEN = "xoxb-test-token"


@pytest.fixture
def slack():
    with FakeSlack() as fake:
        yield fake


@pytest.fixture
def slack_settings(settings, slack):
    settings.SLACK_BOT_TOKEN = TOKEN
    settings.SLACK_API_URL = slack.url
    settings.SLACK_ADMIN_CHANNEL = ADMIN_CHANNEL
    return settings


def slack_farm(farm, url, **extra):
    use_aerender(farm)
    farm.configure(SLACK_BOT_TOKEN=TOKEN, SLACK_API_URL=url, SLACK_ADMIN_CHANNEL=ADMIN_CHANNEL,
                   **extra)


@pytest.fixture
def slack_user(user):
    user.slack_user_id = "U123"
    user.save(update_fields=["slack_user_id"])
    return user


# --- With a real render worker ------------------------------------------------------


@pytest.mark.slow
def test_dm_on_start_and_on_completion_with_a_working_download_link(farm, slack, slack_user):
    slack_farm(farm, slack.url)
    farm.start_worker()
    job = submit(farm, slack_user, "promo.aep", frames=8)
    wait_status(job, Status.COMPLETED, Status.FAILED)
    assert job.status == Status.COMPLETED, job.error

    texts = wait_for(lambda: len(slack.texts("DU123")) >= 2 and slack.texts("DU123"),
                     timeout=15, message=f"DMs not sent: {slack.calls}")
    assert slack.opened() == ["U123", "U123"]
    assert all(call.authorization == f"Bearer {TOKEN}" for call in slack.calls)
    started, done = texts
    assert "Your render *promo.aep* has started on node-a" in started
    assert f"/jobs/{job.pk}" in started
    assert "Your render *promo.aep* is done" in done
    link = next(word for word in done.split() if "/download?signature=" in word)
    assert link.startswith(f"http://localhost:8000/api/jobs/{job.pk}/download?signature=")
    signature = parse_qs(urlsplit(link).query)["signature"][0]
    assert check_download_signature(job.pk, signature) is None
    # Nothing for the admins when all is well.
    assert slack.texts(ADMIN_CHANNEL) == []


@pytest.mark.slow
def test_failed_render_dms_the_user_and_alerts_the_admin_channel(farm, slack, slack_user):
    slack_farm(farm, slack.url, MAX_RENDER_ATTEMPTS=1)
    farm.start_worker()
    job = submit(farm, slack_user, "broken.aep", fail="Missing footage: logo.png")
    wait_status(job, Status.FAILED, Status.COMPLETED)
    assert job.status == Status.FAILED

    wait_for(lambda: len(slack.texts("DU123")) >= 2 and slack.texts(ADMIN_CHANNEL),
             timeout=15, message=f"messages missing: {slack.calls}")
    failed = slack.texts("DU123")[-1]
    assert "Your render *broken.aep* failed" in failed
    assert "Missing footage: logo.png" in failed
    [alert] = slack.texts(ADMIN_CHANNEL)
    assert "broken.aep" in alert and "failed for good" in alert
    assert "Missing footage: logo.png" in alert


@pytest.mark.slow
def test_slack_down_neither_fails_nor_delays_a_render(farm, slack_user):
    slack_farm(farm, closed_port_url())
    worker = farm.start_worker()
    job = submit(farm, slack_user, frames=8)
    wait_status(job, Status.COMPLETED, Status.FAILED)
    assert job.status == Status.COMPLETED, job.error
    assert (event_time(job, Status.COMPLETED) - event_time(job, Status.RENDERING)
            < timedelta(seconds=4))
    wait_for(lambda: "not delivered" in farm.worker_log(worker), timeout=10,
             message="the failed delivery was not logged")
    assert worker.poll() is None


@pytest.mark.slow
def test_a_slow_slack_does_not_delay_renders(farm, slack_user):
    """Every Slack answer takes 5 s (within the client timeout): two renders in a
    row still start and finish at full speed, and the DMs arrive later."""
    with FakeSlack(delay=5) as slow:
        slack_farm(farm, slow.url, SLACK_TIMEOUT_SECONDS=20)
        farm.start_worker()
        first = submit(farm, slack_user, "one.aep", frames=8)
        wait_status(first, Status.COMPLETED, Status.FAILED)
        second = submit(farm, slack_user, "two.aep", frames=8)
        wait_status(second, Status.COMPLETED, Status.FAILED)
        assert (first.status, second.status) == (Status.COMPLETED, Status.COMPLETED)
        for job in (first, second):
            render = event_time(job, Status.COMPLETED) - event_time(job, Status.RENDERING)
            # A synchronous delivery would add at least 5 s (twice that per DM).
            assert render < timedelta(seconds=4), render
        # The deliveries were under way meanwhile and complete in the background.
        wait_for(lambda: len(slow.texts("DU123")) >= 1, timeout=30,
                 message="no DM reached the slow Slack")
        assert "has started" in slow.texts("DU123")[0]


# --- Admin-channel alerts raised by the system -------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_node_down_is_reported_once_when_its_job_is_requeued(slack_settings, slack, user):
    slack_settings.NODE_TIMEOUT_SECONDS = 30
    node = RenderNode.objects.create(name="render-01",
                                     last_heartbeat=timezone.now() - timedelta(minutes=5))
    job = Job.objects.create(name="spot.aep", user=user, status=Status.QUEUED)
    lifecycle.claim_next(node)
    RenderNode.objects.filter(pk=node.pk).update(
        last_heartbeat=timezone.now() - timedelta(minutes=5))

    assert lifecycle.requeue_dead_nodes() == [job.pk]
    # The node check of another worker finds the same dead node: no second alert.
    assert chores.check_nodes() == []
    assert notifications.dispatcher.flush(10)
    [alert] = slack.texts(ADMIN_CHANNEL)
    assert "Render node render-01 stopped responding" in alert
    assert "spot.aep" in alert and "put back in the queue" in alert
    assert SystemEvent.objects.filter(kind="node_down", level="error").count() == 1


def claimed(user, name: str, node_name: str = "render-01") -> tuple[Job, RenderNode]:
    node = RenderNode.objects.create(name=node_name)
    Job.objects.create(name=name, user=user, status=Status.QUEUED)
    return lifecycle.claim_next(node), node


@pytest.mark.django_db(transaction=True)
def test_a_file_named_like_a_node_alert_raises_none(slack_settings, slack, user):
    # A client's file name and AE's error text are free text: they never raise alerts.
    job, _ = claimed(user, "Render node render-07 stopped responding.png")
    lifecycle.render_crashed(job.pk, job.lease, "Render node render-07 stopped responding",
                             permanent=True)

    assert notifications.dispatcher.flush(10)
    [alert] = slack.texts(ADMIN_CHANNEL)
    assert "failed for good" in alert
    assert not SystemEvent.objects.filter(kind="node_down").exists()


@pytest.mark.django_db(transaction=True)
def test_a_node_lost_on_the_last_attempt_is_reported_with_the_failure(slack_settings, slack,
                                                                      user):
    slack_settings.MAX_RENDER_ATTEMPTS = 1
    job, node = claimed(user, "spot.aep", "render-05")
    RenderNode.objects.filter(pk=node.pk).update(
        last_heartbeat=timezone.now() - timedelta(minutes=5))

    assert lifecycle.requeue_dead_nodes() == [job.pk]

    assert notifications.dispatcher.flush(10)
    down, failed = sorted(slack.texts(ADMIN_CHANNEL), key=lambda t: "failed for good" in t)
    assert "Render node render-05 stopped responding" in down and "no attempts left" in down
    assert "spot.aep" in failed and "failed for good" in failed


@pytest.mark.django_db(transaction=True)
def test_slack_text_is_escaped_so_no_one_is_pinged(slack_settings, slack, slack_user):
    job, _ = claimed(slack_user, "<!channel> & <@U999> <https://evil.test|logo>.aep")
    lifecycle.render_crashed(job.pk, job.lease, "AE said <!here>", permanent=True)

    assert notifications.dispatcher.flush(10)
    texts = slack.texts(ADMIN_CHANNEL) + slack.texts("DU123")
    assert len(texts) == 3  # the admin alert, the "started" and the "failed" DMs
    for text in texts:
        assert "<!" not in text and "<@" not in text and "<http" not in text
        assert "&lt;!channel&gt; &amp; &lt;@U999&gt;" in text
    assert sum("AE said &lt;!here&gt;" in text for text in texts) == 2


def test_escape_is_slacks_three_entities():
    assert notifications.escape("a & b < c > d") == "a &amp; b &lt; c &gt; d"
    assert notifications.escape("&lt;") == "&amp;lt;"  # already-escaped text stays literal


@pytest.mark.django_db(transaction=True)
def test_an_idle_node_that_stops_heartbeating_is_reported(slack_settings, slack):
    RenderNode.objects.create(name="render-02",
                              last_heartbeat=timezone.now() - timedelta(minutes=2))
    RenderNode.objects.create(name="render-03")  # alive
    RenderNode.objects.create(name="render-04", stopped_at=timezone.now(),
                              last_heartbeat=timezone.now() - timedelta(hours=1))  # shut down
    assert chores.check_nodes() == ["render-02"]
    assert chores.check_nodes() == []
    assert notifications.dispatcher.flush(10)
    [alert] = slack.texts(ADMIN_CHANNEL)
    assert "render-02 stopped responding" in alert and "No heartbeat for" in alert


@pytest.mark.django_db(transaction=True)
def test_disk_nearly_full_alerts_the_admin_channel_once(slack_settings, slack, dropbox):
    slack_settings.DISK_ALERT_PERCENT = 0  # every disk counts as full
    alerted = chores.check_disks()
    assert alerted == [str(dropbox), slack_settings.RENDER_TEMP_DIR]
    assert chores.check_disks() == []  # not again within the repeat window
    assert notifications.dispatcher.flush(10)
    texts = slack.texts(ADMIN_CHANNEL)
    assert len(texts) == 2
    assert all("Disk nearly full" in text for text in texts)
    assert any("dropbox volume" in text for text in texts)


@pytest.mark.django_db(transaction=True)
def test_slack_errors_are_logged_not_raised(settings, caplog):
    with FakeSlack(fail="channel_not_found") as failing:
        settings.SLACK_BOT_TOKEN = TOKEN
        settings.SLACK_API_URL = failing.url
        settings.SLACK_ADMIN_CHANNEL = "#nowhere"
        assert notifications.alert_admins("test alert")
        assert notifications.dispatcher.flush(10)
    assert len(failing.calls) == 1  # not retried
    assert "not delivered: channel_not_found" in caplog.text


def test_nothing_is_sent_without_a_token(settings, slack):
    settings.SLACK_BOT_TOKEN = ""
    settings.SLACK_API_URL = slack.url
    settings.SLACK_ADMIN_CHANNEL = ADMIN_CHANNEL
    assert not notifications.alert_admins("hello")
    assert not notifications.send_dm("U1", "hello")
    time.sleep(0.1)
    assert slack.calls == []


# --- Review ----------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_preview_ready_for_review_dms_the_user_with_a_link_to_watch_it(
        slack_settings, slack, slack_user):
    from jobs.links import check_preview_signature
    from jobs.models import JobPreview

    slack_settings.PUBLIC_URL = "https://render.studio.test"
    job = Job.objects.create(name="Ana-1", user=slack_user, status=Status.QUEUED, review=True,
                             needs_preview=True)
    node = RenderNode.objects.create(name="render-01")
    claimed = lifecycle.claim_next(node)
    JobPreview.objects.create(job=job, path="/r/previews/x.mp4", size=10)
    assert notifications.dispatcher.flush(10)
    slack.calls.clear()  # the "render started" DM

    assert lifecycle.preview_ready(claimed.pk, claimed.lease)
    assert notifications.dispatcher.flush(10)

    [text] = slack.texts("DU123")
    assert "The preview of *Ana-1* is ready for review" in text
    assert "Approve or reject it: https://render.studio.test/review" in text
    link = urlsplit(text.split("one hour): ", 1)[1].split()[0])
    assert link.path == f"/api/jobs/{job.pk}/preview"
    assert check_preview_signature(job.pk, parse_qs(link.query)["signature"][0]) is None

"""The database side of estimates: the render history written as renders
complete (jobs.history), the cached queue forecast (jobs.forecast), and the
estimate in the API: on every unfinished job, and before a submission."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import TestCase
from django.utils import timezone

from jobs import forecast, lifecycle
from jobs.models import Job, JobEvent, RenderNode, RenderStat, Status
from jobs.node import retention
from tests.helpers.api import api_test_settings  # noqa: F401  (autouse)

pytestmark = pytest.mark.django_db

SPOT = "D:\\Dropbox\\Clients\\acme\\spot.aep"


def queued(user, path=SPOT, comp="Main", priority=0, age=0.0, **fields):
    return Job.objects.create(
        user=user, status=Status.QUEUED, project_path=path, path_key=path.casefold(),
        config={"template": {"composition": comp}}, priority=priority,
        created_at=timezone.now() - timedelta(seconds=age), **fields)


def rendered(user, node, *, render, frames=100, overhead=6.0, after=2.0, path=SPOT,
             comp="Main", **fields) -> Job:
    """A job that rendered on ``node`` in ``render`` seconds of render process,
    completed through the lifecycle like a worker completes it."""
    job = queued(user, path, comp, frames_total=frames, **fields)
    claimed = lifecycle.claim_next(node)
    assert claimed.pk == job.pk
    now = timezone.now()
    Job.objects.filter(pk=job.pk).update(
        started_at=now - timedelta(seconds=render + overhead), render_seconds=render,
        last_output_at=now - timedelta(seconds=after), frames_done=frames)
    # The history is written after the completion commits.
    with TestCase.captureOnCommitCallbacks(execute=True):
        assert lifecycle.complete(job.pk, claimed.lease, output_path="D:\\out.mp4",
                                  output_size=9)
    return job


@pytest.fixture
def node(db):
    return RenderNode.objects.create(name="render-01")


def stat(key):
    return RenderStat.objects.get(key=key).samples


def test_a_completed_render_joins_the_history_of_its_composition_and_node(user, node):
    job = rendered(user, node, render=50, frames=100, overhead=6, after=2,
                   project={"composition": {"name": "Main", "width": 1920, "height": 1080}})
    row = forecast.history.make_row(forecast.history.values_of(Job.objects.get(pk=job.pk)))
    assert row.size == (1920, 1080)
    for key in (row.project_key, row.comp_key, "node:render-01"):
        [sample] = stat(key)
        assert sample["frames"] == 100
        assert sample["spf"] == pytest.approx(0.5)
        assert sample["overhead"] == pytest.approx(6, abs=0.2)
        assert sample["after"] == pytest.approx(2, abs=0.2)
    # The node's pace is known once its composition has history of its own.
    assert "ratio" not in stat("node:render-01")[0]


def test_failed_cancelled_and_retried_renders_stay_out_of_the_history(user, node, settings):
    settings.MAX_RENDER_ATTEMPTS = 2
    job = queued(user, frames_total=100)
    claim = lifecycle.claim_next(node)
    assert lifecycle.render_crashed(job.pk, claim.lease, "boom") == Status.QUEUED
    claim = lifecycle.claim_next(node)
    assert lifecycle.render_crashed(job.pk, claim.lease, "boom") == Status.FAILED
    other = queued(user, "D:\\Dropbox\\b.aep", frames_total=100)
    lifecycle.claim_next(node)
    lifecycle.cancel(other.pk, actor="admin@studio.test")
    assert not RenderStat.objects.exists()


def test_the_history_outlives_job_retention(user, node, settings):
    job = rendered(user, node, render=10)
    Job.objects.filter(pk=job.pk).update(finished_at=timezone.now() - timedelta(days=30))
    settings.JOB_RETENTION_DAYS = 7
    assert retention.purge().jobs == 1
    assert RenderStat.objects.count() == 3
    # A composition nobody rendered for a year goes at last.
    RenderStat.objects.filter(key="node:render-01").update(
        updated_at=timezone.now() - timedelta(days=retention.HISTORY_DAYS + 1))
    assert retention.purge().history == 1
    assert RenderStat.objects.count() == 2


def test_every_unfinished_job_has_an_estimate_in_the_api(admin_client, user, node):
    for render in (40, 44, 42):
        rendered(user, node, render=render, frames=100)
    done = Job.objects.get(render_seconds=44)
    waiting = queued(user, frames_total=50)

    data = admin_client.get(f"/api/jobs/{waiting.pk}").json()["estimate"]
    # 0.42 s per frame (the median) × 50 frames, plus the median 6 s around the render.
    assert data["render_seconds"] == pytest.approx(0.42 * 50 + 6, abs=0.3)
    assert data["basis"] == "median of 3 renders of this composition"
    assert data["queue_position"] == 1 and data["frames"] == 50
    assert data["cost"] is None
    starts = timezone.datetime.fromisoformat(data["starts_at"])
    assert abs((starts - timezone.now()).total_seconds()) < 5  # render-01 is idle
    finishes = timezone.datetime.fromisoformat(data["finishes_at"])
    assert (finishes - starts).total_seconds() == pytest.approx(data["render_seconds"], abs=0.1)

    listed = {row["id"]: row for row in admin_client.get("/api/jobs").json()["results"]}
    assert listed[str(waiting.pk)]["estimate"]["basis"] == data["basis"]
    assert listed[str(done.pk)]["estimate"] is None
    assert admin_client.get(f"/api/jobs/{done.pk}").json()["estimate"] is None


def test_queue_times_follow_claim_order_over_the_nodes_that_are_up(admin_client, user, node):
    rendered(user, node, render=100, frames=100, overhead=0, after=0)
    RenderNode.objects.create(name="render-02")
    RenderNode.objects.create(name="render-03", last_heartbeat=timezone.now()
                              - timedelta(minutes=10))  # down
    RenderNode.objects.create(name="render-04", stopped_at=timezone.now())  # shut down
    jobs = [queued(user, f"D:\\Dropbox\\{n}.aep", age=10 - n, frames_total=100)
            for n in range(3)]
    # Same composition name, unknown size, other projects: its history counts.
    estimates = [admin_client.get(f"/api/jobs/{job.pk}").json()["estimate"] for job in jobs]
    assert [e["queue_position"] for e in estimates] == [1, 2, 3]
    assert all(e["render_seconds"] == pytest.approx(100, abs=0.5) for e in estimates)
    assert estimates[0]["basis"] == "median of 1 render of “Main” in other projects"
    first, second, third = (timezone.datetime.fromisoformat(e["starts_at"]) for e in estimates)
    assert abs((second - first).total_seconds()) < 1  # two nodes up: both start at once
    assert (third - first).total_seconds() == pytest.approx(100, abs=1)


def test_the_forecast_changes_when_the_queue_changes(admin, user, node):
    low = queued(user, "D:\\Dropbox\\a.aep", age=5, frames_total=60)
    high = queued(user, "D:\\Dropbox\\b.aep", age=1, frames_total=60)
    first = forecast.current()
    assert forecast.current() is first  # nothing moved: the same forecast
    assert (first.get(low.pk).position, first.get(high.pk).position) == (1, 2)

    lifecycle.set_priority(high.pk, 10, actor=admin.email)
    again = forecast.current()
    assert again is not first
    assert (again.get(high.pk).position, again.get(low.pk).position) == (1, 2)
    assert again.get(low.pk).starts_at == again.get(high.pk).finishes_at


def test_no_node_up_means_no_times_but_still_a_duration(admin_client, user):
    job = queued(user, frames_total=10)
    data = admin_client.get(f"/api/jobs/{job.pk}").json()["estimate"]
    assert data["starts_at"] is None and data["finishes_at"] is None
    assert data["render_seconds"] == pytest.approx(10.0)  # the default 1 s per frame
    assert data["basis"] == ("no history: default rate of 1 s per frame; "
                             "no render node is up")


def test_a_rendering_job_is_estimated_from_its_live_progress(admin_client, user, node):
    for render in (100, 100, 100):
        rendered(user, node, render=render, frames=100, overhead=0, after=0)
    job = queued(user, frames_total=100)
    claim = lifecycle.claim_next(node)
    now = timezone.now()
    # 80 % done in 40 s: twice as fast as history says.
    Job.objects.filter(pk=job.pk).update(started_at=now - timedelta(seconds=40),
                                         phase="rendering", frames_done=80, eta_seconds=10,
                                         last_output_at=now)
    data = admin_client.get(f"/api/jobs/{claim.pk}").json()["estimate"]
    assert "blended with the live rate (80% rendered)" in data["basis"]
    # 20 frames left at 0.8 × 0.5 + 0.2 × 1 s per frame.
    left = (timezone.datetime.fromisoformat(data["finishes_at"]) - now).total_seconds()
    assert left == pytest.approx(20 * 0.6, abs=1)


def test_the_estimate_costs_render_minutes_at_the_configured_rate(admin_client, user, node,
                                                                  settings):
    from decimal import Decimal

    settings.RENDER_COST_PER_MINUTE = Decimal("0.90")
    settings.RENDER_COST_CURRENCY = "EUR"
    rendered(user, node, render=120, frames=100, overhead=0, after=0)
    job = queued(user, frames_total=100)
    data = admin_client.get(f"/api/jobs/{job.pk}").json()["estimate"]
    assert data["cost"] == {"amount": 1.8, "currency": "EUR"}


# --- POST /api/estimates ---------------------------------------------------------------------


@pytest.fixture
def body(dropbox, user):
    return {"project_path": "/Users/alice/Dropbox/projects/spot.aep",
            "saved_at": "2025-03-01T12:00:00Z", "mac_username": "alice",
            "nexrender": {"template": {"composition": "Main", "outputExt": "mp4"}}}


def test_an_estimate_before_submitting_creates_nothing(api_client, body, dropbox, user, node):
    path = str((dropbox / "projects" / "spot.aep").resolve())
    for render in (30, 31, 29):
        rendered(user, node, render=render, frames=60, overhead=4, path=path)
    ahead = queued(user, "D:\\Dropbox\\other.aep", frames_total=60)
    jobs, events = Job.objects.count(), JobEvent.objects.count()

    response = api_client.post("/api/estimates", body, format="json")

    assert response.status_code == 200, response.content
    data = response.json()
    assert (Job.objects.count(), JobEvent.objects.count()) == (jobs, events)
    assert data["render_seconds"] == pytest.approx(34, abs=0.5)
    assert data["frames"] == 60
    assert data["basis"] == ("median of 3 renders of this composition; frames as in its "
                             "earlier renders")
    assert data["queue_position"] is None
    # Behind the job already queued (one node).
    ahead_done = forecast.estimate_for(ahead).finishes_at
    starts = timezone.datetime.fromisoformat(data["starts_at"])
    assert abs((starts - ahead_done).total_seconds()) < 1


def test_a_frame_range_counts_its_frames(api_client, body, user, node):
    body["nexrender"]["template"].update(frameStart=10, frameEnd=29)
    data = api_client.post("/api/estimates", body, format="json").json()
    assert data["frames"] == 20 and data["render_seconds"] == pytest.approx(20)
    assert data["basis"] == "no history: default rate of 1 s per frame"


def test_an_estimate_checks_the_body_like_a_submission(api_client, body, user):
    del body["saved_at"]
    body["nexrender"]["template"]["composition"] = "Bad\"Name"
    estimate = api_client.post("/api/estimates", body, format="json")
    submission = api_client.post("/api/jobs", body, format="json")
    assert estimate.status_code == submission.status_code == 400
    assert estimate.json() == submission.json()
    assert not Job.objects.exists()


def test_estimates_need_a_token_or_a_session(body):
    from rest_framework.test import APIClient

    assert APIClient().post("/api/estimates", body, format="json").status_code == 401


@pytest.mark.django_db(transaction=True)
def test_a_slow_forecast_is_rebuilt_in_the_background(user, monkeypatch):
    from tests.helpers.common import wait_for

    # As if every build were slow (a very long queue): requests never wait for one.
    monkeypatch.setattr(forecast, "SYNC_BUILD_SECONDS", 0.0)
    RenderNode.objects.create(name="render-01")
    first_job = queued(user, "D:\\Dropbox\\a.aep", frames_total=10)
    first = forecast.current()  # none yet: built at once
    assert first.get(first_job.pk).position == 1

    urgent = queued(user, "D:\\Dropbox\\b.aep", frames_total=10, priority=5)
    lifecycle.record(urgent.pk, "submitted")
    assert forecast.current() is first  # the previous one, while a thread builds
    newer = wait_for(lambda: forecast.current() is not first and forecast.current(),
                     timeout=10, message="the forecast was not rebuilt")
    assert newer.get(urgent.pk).position == 1
    assert newer.get(first_job.pk).position == 2


def test_history_is_read_again_only_when_a_key_gained_renders(user, node):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    rendered(user, node, render=10, frames=10)
    job = queued(user, "D:\\Dropbox\\b.aep", frames_total=10)
    assert forecast.current().get(job.pk).seconds_per_frame == pytest.approx(1)
    lifecycle.record(job.pk, "note")  # the queue changed, the history did not
    with CaptureQueriesContext(connection) as queries:
        assert forecast.current().get(job.pk).seconds_per_frame == pytest.approx(1)
    assert not [q for q in queries.captured_queries if '"samples"' in q["sql"]]
    Job.objects.filter(pk=job.pk).delete()
    rendered(user, node, render=30, frames=10)
    rendered(user, node, render=30, frames=10)
    waiting = queued(user, "D:\\Dropbox\\b.aep", frames_total=10)
    assert forecast.current().get(waiting.pk).seconds_per_frame == pytest.approx(3)


def test_review_previews_have_a_history_of_their_own(admin_client, user, node):
    # Final renders of the spot take 1 s a frame; its draft previews a fifth of that.
    for _ in range(2):
        rendered(user, node, render=100, frames=100, overhead=0, after=0)
    job = queued(user, frames_total=100, review=True, needs_preview=True)
    claim = lifecycle.claim_next(node)
    Job.objects.filter(pk=job.pk).update(started_at=timezone.now() - timedelta(seconds=20),
                                         render_seconds=20)
    with TestCase.captureOnCommitCallbacks(execute=True):
        assert lifecycle.preview_ready(job.pk, claim.lease)

    # Waiting for approval: the next render is the final one.
    waiting = admin_client.get(f"/api/jobs/{job.pk}").json()["estimate"]
    assert waiting["render_seconds"] == pytest.approx(100, abs=1)
    assert waiting["basis"] == "median of 2 renders of this composition"
    # Another review job of the spot: its preview comes first.
    Job.objects.filter(pk=job.pk).update(status=Status.REJECTED)
    another = queued(user, frames_total=100, review=True, needs_preview=True)
    preview = admin_client.get(f"/api/jobs/{another.pk}").json()["estimate"]
    assert preview["render_seconds"] == pytest.approx(20, abs=1)
    assert preview["basis"] == ("median of 1 render of this composition; the review preview "
                                "(the final render follows approval)")


def test_a_preview_joins_the_history_at_its_own_end_unless_approved_first(user, node,
                                                                        monkeypatch):
    # The history is written after the commit (on a node, once the next render
    # started): the preview's time is when it ended, not when the receiver ran...
    job = queued(user, frames_total=100, review=True, needs_preview=True)
    claim = lifecycle.claim_next(node)
    Job.objects.filter(pk=job.pk).update(started_at=timezone.now() - timedelta(seconds=20),
                                         render_seconds=20)
    with TestCase.captureOnCommitCallbacks() as after_commit:
        assert lifecycle.preview_ready(job.pk, claim.lease)
    later = timezone.now() + timedelta(seconds=100)
    monkeypatch.setattr(timezone, "now", lambda: later)
    for receivers in after_commit:
        receivers()
    [sample] = stat(forecast.history.project_key(SPOT.casefold(), "Main", preview=True))
    assert sample["overhead"] == pytest.approx(0, abs=0.5)  # 20 s in all, 20 s rendering
    monkeypatch.undo()

    # ...and a preview approved before that reads as a final render: it is left out.
    other = queued(user, "D:\\Dropbox\\other.aep", frames_total=100, review=True,
                   needs_preview=True)
    claim = lifecycle.claim_next(node)
    Job.objects.filter(pk=other.pk).update(started_at=timezone.now() - timedelta(seconds=20),
                                           render_seconds=20)
    with TestCase.captureOnCommitCallbacks() as after_commit:
        assert lifecycle.preview_ready(other.pk, claim.lease)
    assert lifecycle.approve(other.pk, actor="admin@studio.test")
    for receivers in after_commit:
        receivers()
    assert RenderStat.objects.filter(key__startswith="project:").count() == 1


def test_an_old_forecast_reads_again_only_what_moves_without_events(user, node):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for _ in range(3):
        rendered(user, node, render=100, frames=100, overhead=0, after=0)
    queued(user, frames_total=100)
    claim = lifecycle.claim_next(node)
    waiting = [queued(user, f"D:\\Dropbox\\{n}.aep", age=10 - n, frames_total=100)
               for n in range(2)]
    first = forecast.current()
    assert first.get(waiting[0].pk).position == 1

    def aged(seconds):
        forecast._cached["built"] -= seconds
        return forecast.current()

    # The render is nearly done (progress writes no event) and a queued job's
    # priority is changed behind the lifecycle's back (as Django's admin would).
    now = timezone.now()
    Job.objects.filter(pk=claim.pk).update(started_at=now - timedelta(seconds=95),
                                           phase="rendering", frames_done=95,
                                           last_output_at=now)
    Job.objects.filter(pk=waiting[1].pk).update(priority=10)
    assert aged(forecast.MAX_AGE_SECONDS - 1) is first

    with CaptureQueriesContext(connection) as queries:
        old = aged(1)
    # The queue is as it was read; the render's end and the nodes are new.
    assert old is not first
    assert [old.get(w.pk).position for w in waiting] == [1, 2]
    assert (first.get(waiting[0].pk).starts_at - now).total_seconds() > 90
    assert (old.get(waiting[0].pk).starts_at - now).total_seconds() < 10
    assert not any("QUEUED" in q["sql"] for q in queries.captured_queries)

    # Read again in full after REREAD_SECONDS: the edit shows.
    forecast._cached["read"] -= forecast.REREAD_SECONDS
    whole = aged(forecast.MAX_AGE_SECONDS)
    assert [whole.get(w.pk).position for w in waiting] == [2, 1]

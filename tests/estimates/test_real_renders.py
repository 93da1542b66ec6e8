"""Estimates from real renders: a worker process renders simulator projects
through aerender; the history, the queue forecast, the API and the usage
report see what a studio would see."""

from __future__ import annotations

from datetime import datetime

import pytest

from jobs.models import Job, Status
from tests.helpers.common import wait_for
from tests.helpers.farm import submit, use_aerender, wait_status

pytestmark = pytest.mark.slow

SPOT = {"frames": 30, "frame_seconds": 0.1}


def when(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_a_fourth_render_queued_behind_another_is_estimated_from_the_first_three(
        farm, user, admin_client):
    use_aerender(farm)
    farm.start_worker()
    for _ in range(3):
        job = submit(farm, user, "spot.aep", **SPOT)
        wait_status(job, Status.COMPLETED, Status.FAILED)
        assert job.status == Status.COMPLETED, job.error

    # Another project goes first; the fourth spot queues behind it.
    ahead = submit(farm, user, "promo.aep", frames=60, frame_seconds=0.1)
    wait_status(ahead, Status.RENDERING)
    fourth = submit(farm, user, "spot.aep", **SPOT)
    wait_status(fourth, Status.QUEUED, Status.RENDERING)
    assert fourth.status == Status.QUEUED, "the job ahead finished too soon for this test"
    estimate = admin_client.get(f"/api/jobs/{fourth.pk}").json()["estimate"]
    ahead_estimate = admin_client.get(f"/api/jobs/{ahead.pk}").json()["estimate"]

    wait_status(fourth, Status.COMPLETED, Status.FAILED)
    assert fourth.status == Status.COMPLETED, fourth.error
    assert estimate["basis"] == ("median of 3 renders of this composition; frames as in its "
                                 "earlier renders")
    assert estimate["queue_position"] == 1 and estimate["frames"] == 30
    took = (fourth.finished_at - fourth.started_at).total_seconds()
    assert abs(estimate["render_seconds"] - took) <= 0.35 * took, (estimate, took)
    # It starts when the render ahead ends, which the forecast knew within seconds.
    late = (fourth.started_at - when(estimate["starts_at"])).total_seconds()
    assert abs(late) < 3, (estimate, fourth.started_at, ahead_estimate)
    span = (when(estimate["finishes_at"]) - when(estimate["starts_at"])).total_seconds()
    assert span == pytest.approx(estimate["render_seconds"], abs=0.1)
    print(f"render_seconds {estimate['render_seconds']:.2f} s estimated, {took:.2f} s taken; "
          f"started {late:+.2f} s from starts_at")

    # The usage report adds up the same renders. The worker counts a render just
    # after committing its completion, so the last one may take a moment.
    done = Job.objects.filter(status=Status.COMPLETED)
    assert done.count() == 5

    def usage():
        found = admin_client.get("/api/reports/usage", {"group": "project"}).json()
        return found if found["total"]["renders"] == 5 else None

    report = wait_for(usage, timeout=10, message="the usage report never counted 5 renders")
    minutes = sum((job.finished_at - job.started_at).total_seconds() for job in done) / 60
    assert report["total"]["render_minutes"] == pytest.approx(minutes, abs=0.011)
    spot = next(row for row in report["rows"] if row["label"].endswith("spot.aep"))
    assert spot["renders"] == 4

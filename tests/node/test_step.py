"""One round of the render loop (Worker.step), called directly: what it looks at
between one render's end and the next claim."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from django.db import OperationalError
from django.db.models.functions import Now

from jobs import lifecycle
from jobs.models import Job, RenderNode, Status
from jobs.node.render import RenderOutcome
from jobs.node.worker import Worker


@pytest.fixture
def worker(db, monkeypatch):
    worker = Worker("node-a", validate=False)
    worker.register()
    # The render itself is not this test's subject: it ends as the test says.
    outcomes = []
    monkeypatch.setattr(worker, "render", lambda job: outcomes.pop(0))
    monkeypatch.setattr(worker, "prepare_spare", lambda: None)
    worker.outcomes = outcomes
    return worker


def queued(user, name: str) -> Job:
    return Job.objects.create(user=user, name=name, status=Status.QUEUED)


def orphan_of(worker) -> Job:
    """The job RENDERING under the worker's node, which it is not rendering."""
    return Job.objects.get(status=Status.RENDERING, node=worker.node)


def test_a_claim_left_rendering_by_its_render_is_released_by_the_next_round(worker, user):
    job = queued(user, "first")
    # Its render could not record how it ended (the database refused it).
    worker.outcomes.extend([RenderOutcome("LOST", "refused"), RenderOutcome("LOST", "refused")])
    assert worker.step()
    assert orphan_of(worker).attempts == 1
    assert worker.step()  # released as a crashed attempt, back in the queue, claimed again
    job.refresh_from_db()
    assert job.attempts == 2
    assert job.events.filter(message__contains="lost track of this render").count() == 1


def test_after_a_completed_render_the_next_claim_comes_without_a_look_for_orphans(
        worker, user, monkeypatch):
    first, second = queued(user, "first"), queued(user, "second")

    def completed(job):
        lifecycle.complete(job.pk, job.lease, output_path="out.avi", output_size=1)
        return RenderOutcome(Status.COMPLETED)

    looked = []
    monkeypatch.setattr(lifecycle, "release_orphans",
                        lambda *args, **kwargs: looked.append(args) or [])
    monkeypatch.setattr(worker, "render", completed)
    assert worker.step() and worker.step()
    assert len(looked) == 1  # before the first claim only
    assert {job.status for job in Job.objects.filter(pk__in=[first.pk, second.pk])} \
        == {Status.COMPLETED}


def test_a_dead_nodes_job_is_taken_back_by_the_chore_and_claimed_at_once(worker, user, settings):
    settings.NODE_TIMEOUT_SECONDS = 30
    dead = RenderNode.objects.create(name="node-dead")
    job = queued(user, "on a dead node")
    assert lifecycle.claim_next(dead).pk == job.pk
    RenderNode.objects.filter(pk=dead.pk).update(last_heartbeat=Now() - timedelta(seconds=31))
    woken = []
    worker.waker.poke = lambda: woken.append(True)
    worker.take_back_dead_nodes_jobs()
    job.refresh_from_db()
    assert job.status == Status.QUEUED and job.events.filter(kind="node_lost").exists()
    assert woken, "the render loop must claim it now, not at its next poll"
    worker.outcomes.append(RenderOutcome(Status.QUEUED))
    assert worker.step()
    assert Job.objects.get(pk=job.pk).node == worker.node


def test_a_database_away_is_said_once_by_the_dead_node_chore(worker, monkeypatch, caplog):
    def away(**_):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(lifecycle, "requeue_dead_nodes", away)
    with caplog.at_level(logging.WARNING, logger="jobs.node.worker"):
        for _ in range(3):
            worker.take_back_dead_nodes_jobs()  # never raises: the chores go on
    warnings = [r for r in caplog.records if "dead nodes" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].exc_info is None
    monkeypatch.setattr(lifecycle, "requeue_dead_nodes", lambda **_: [])
    worker.take_back_dead_nodes_jobs()
    assert not worker.dead_check_failing

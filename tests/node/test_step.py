"""One round of the render loop (Worker.step), called directly: what it looks at
between one render's end and the next claim."""

from __future__ import annotations

import pytest

from jobs import lifecycle
from jobs.models import Job, Status
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

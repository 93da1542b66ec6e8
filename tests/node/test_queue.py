"""The queue: claim order, compare-and-set claims, retries and dead nodes."""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from jobs import lifecycle
from jobs.models import Job, RenderNode, Status


def queued_job(user, n, priority=0, created_offset=0):
    return Job.objects.create(
        user=user, status=Status.QUEUED, priority=priority, project_path=f"/p/{n}.aep",
        path_key=f"/p/{n}.aep", created_at=timezone.now() + timedelta(seconds=created_offset))


@pytest.fixture
def node(db):
    return RenderNode.objects.create(name="node-a")


def test_claims_take_highest_priority_then_oldest(user, node):
    low_old = queued_job(user, 1, priority=0, created_offset=-30)
    high_new = queued_job(user, 2, priority=5, created_offset=0)
    high_old = queued_job(user, 3, priority=5, created_offset=-10)
    low_new = queued_job(user, 4, priority=0, created_offset=-1)
    order = [lifecycle.claim_next(node).pk for _ in range(4)]
    assert order == [high_old.pk, high_new.pk, low_old.pk, low_new.pk]
    assert lifecycle.claim_next(node) is None


def test_a_claim_counts_an_attempt_and_records_the_node(user, node):
    job = queued_job(user, 1)
    claimed = lifecycle.claim_next(node)
    assert claimed.pk == job.pk
    assert claimed.status == Status.RENDERING
    assert claimed.attempts == 1
    assert claimed.node == node
    assert claimed.lease is not None
    event = job.events.last()
    assert (event.from_status, event.to_status, event.actor) == ("QUEUED", "RENDERING",
                                                                 "node:node-a")


def test_transitions_are_compare_and_set(user):
    job = queued_job(user, 1)
    assert lifecycle.cancel(job.pk, actor="admin@studio.test")
    # A second actor acting on what it last saw changes nothing.
    assert not lifecycle.cancel(job.pk, actor="someone-else")
    assert not lifecycle.mark_validated(job.pk)
    assert job.events.filter(kind="cancelled").count() == 1


def test_a_crashed_render_is_retried_until_the_attempts_run_out(user, node, settings):
    settings.MAX_RENDER_ATTEMPTS = 3
    job = queued_job(user, 1)
    outcomes = []
    for _ in range(3):
        claimed = lifecycle.claim_next(node)
        outcomes.append(lifecycle.render_crashed(claimed.pk, claimed.lease, "aerender crashed"))
    assert outcomes == [Status.QUEUED, Status.QUEUED, Status.FAILED]
    job.refresh_from_db()
    assert job.attempts == 3
    assert job.error.startswith("Failed after 3 attempt(s): aerender crashed")


def test_an_interrupted_render_keeps_its_attempt(user, node):
    queued_job(user, 1)
    claimed = lifecycle.claim_next(node)
    assert lifecycle.requeue_interrupted(claimed.pk, claimed.lease, "worker stopping")
    claimed.refresh_from_db()
    assert (claimed.status, claimed.attempts) == (Status.QUEUED, 0)


def test_a_stale_lease_cannot_finish_a_job(user, node):
    queued_job(user, 1)
    first = lifecycle.claim_next(node)
    lifecycle.requeue_interrupted(first.pk, first.lease, "requeued")
    second = lifecycle.claim_next(node)
    assert not lifecycle.complete(first.pk, first.lease, output_path="/x", output_size=1)
    assert lifecycle.complete(second.pk, second.lease, output_path="/x", output_size=1)


def test_jobs_of_a_dead_node_are_requeued(user, node, settings):
    settings.NODE_TIMEOUT_SECONDS = 30
    queued_job(user, 1)
    claimed = lifecycle.claim_next(node)
    assert lifecycle.requeue_dead_nodes() == []
    RenderNode.objects.filter(pk=node.pk).update(
        last_heartbeat=timezone.now() - timedelta(seconds=31))
    assert lifecycle.requeue_dead_nodes() == [claimed.pk]
    claimed.refresh_from_db()
    assert claimed.status == Status.QUEUED
    assert "stopped responding" in claimed.error


def test_supersede_cancels_every_unfinished_job_of_the_project(user):
    first = lifecycle.submit(actor="api:t", user=user, project_path="/p/a.aep",
                             path_key="/p/a.aep").job
    second = lifecycle.submit(actor="api:t", user=user, project_path="/P/A.aep",
                              path_key="/p/a.aep")
    assert second.superseded == [first.pk]
    first.refresh_from_db()
    assert first.status == Status.CANCELLED
    assert first.events.filter(kind="superseded").exists()


def test_retry_goes_back_through_validation(user):
    job = Job.objects.create(user=user, status=Status.FAILED, attempts=3, error="boom",
                             project_path="/p/a.aep", path_key="/p/a.aep")
    assert lifecycle.retry(job.pk, actor="alice@studio.test")
    job.refresh_from_db()
    assert (job.status, job.attempts, job.error) == (Status.PENDING, 0, "")


def test_retry_refuses_when_a_newer_job_of_the_project_runs(user):
    old = Job.objects.create(user=user, status=Status.FAILED, project_path="/p/a.aep",
                             path_key="/p/a.aep")
    Job.objects.create(user=user, status=Status.QUEUED, project_path="/p/a.aep",
                       path_key="/p/a.aep")
    with pytest.raises(lifecycle.Conflict):
        lifecycle.retry(old.pk, actor="alice@studio.test")


@pytest.mark.django_db(transaction=True)
def test_concurrent_claims_never_take_the_same_job(user):
    nodes = [RenderNode.objects.create(name=f"n{i}") for i in range(4)]
    for n in range(40):
        queued_job(user, n)
    claimed, errors = [], []

    def claim_all(node):
        try:
            while (job := lifecycle.claim_next(node)) is not None:
                claimed.append(job.pk)
        except Exception as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=claim_all, args=(node,)) for node in nodes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(claimed) == 40
    assert len(set(claimed)) == 40

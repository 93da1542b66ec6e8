"""The queue: claim order, compare-and-set claims, retries and dead nodes."""

import threading
from datetime import timedelta

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from jobs import lifecycle
from jobs.models import Job, RenderNode, Status
from jobs.node.engines import get_engine
from tests.helpers.common import at_once


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


def test_what_was_read_before_the_render_survives_the_claim(user, node):
    job = queued_job(user, 1)
    # The project was read before rendering (preflight): 300 frames, a warning.
    found = [{"code": "missing_footage", "message": "Footage 'a.png' is missing"}]
    Job.objects.filter(pk=job.pk).update(frames_total=300, warnings=found)
    claimed = lifecycle.claim_next(node)
    assert (claimed.frames_total, claimed.warnings) == (300, found)
    claimed.config = {"template": {"composition": "main", "frameStart": 0, "frameEnd": 9}}
    assert get_engine("nexrender").progress(claimed).frames_total == 300


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
    assert claimed.error_code == "node_lost"
    assert claimed.events.get(kind="node_lost").to_status == Status.QUEUED


def test_a_node_is_judged_on_the_database_clock_by_one_rule(node, settings):
    from django.db.models.functions import Now

    settings.NODE_TIMEOUT_SECONDS = 30
    RenderNode.objects.filter(pk=node.pk).update(last_heartbeat=Now())
    fresh = RenderNode.objects.with_liveness().get(pk=node.pk)
    assert fresh.is_alive() and fresh.heartbeat_age.total_seconds() < 5
    assert list(RenderNode.objects.alive()) == [node] and not RenderNode.objects.silent()
    # A heartbeat the database took 31 s ago (by its own clock) is a dead node,
    # whatever the clock of whoever looks.
    RenderNode.objects.filter(pk=node.pk).update(last_heartbeat=Now() - timedelta(seconds=31))
    stale = RenderNode.objects.with_liveness().get(pk=node.pk)
    assert not stale.is_alive() and not RenderNode.objects.get(pk=node.pk).is_alive()
    assert 30 < stale.heartbeat_age.total_seconds() < 40
    assert list(RenderNode.objects.silent()) == [node]
    # A node that shut down is not alive either, however recent its heartbeat.
    RenderNode.objects.filter(pk=node.pk).update(last_heartbeat=Now(), stopped_at=Now())
    assert not RenderNode.objects.get(pk=node.pk).is_alive()


def test_a_job_left_without_a_node_is_requeued_after_the_node_timeout(user, node,
                                                                        settings):
    settings.NODE_TIMEOUT_SECONDS = 30
    queued_job(user, 1)
    claimed = lifecycle.claim_next(node)
    node.delete()  # an admin deleted the node's row: the job belongs to no node
    # First seen: marked, not requeued (a live worker registers again meanwhile).
    assert lifecycle.requeue_dead_nodes() == []
    claimed.refresh_from_db()
    assert claimed.status == Status.RENDERING and claimed.node_lost_at is not None
    Job.objects.filter(pk=claimed.pk).update(
        node_lost_at=claimed.node_lost_at - timedelta(seconds=31))
    assert lifecycle.requeue_dead_nodes() == [claimed.pk]
    claimed.refresh_from_db()
    assert (claimed.status, claimed.error_code) == (Status.QUEUED, "node_lost")
    assert claimed.events.get(kind="node_lost").from_status == Status.RENDERING


def test_a_claimed_job_this_node_does_not_render_is_released(user, node):
    queued_job(user, 1)
    claimed = lifecycle.claim_next(node)
    assert lifecycle.release_orphans(node, "lost track") == [claimed.pk]
    claimed.refresh_from_db()
    assert claimed.status == Status.QUEUED and "lost track" in claimed.error


def test_no_claim_while_claims_are_paused(user, node):
    job = queued_job(user, 1)
    pause = lifecycle.pause_claims("update", seconds=60)
    assert lifecycle.claim_next(node) is None
    lifecycle.resume_claims(pause)
    assert lifecycle.claim_next(node).pk == job.pk


def test_a_pause_is_looked_for_after_the_claims_write_and_undoes_it(user, node, monkeypatch):
    # An update pauses claims, then waits for "nothing renders": a node looks for
    # a pause inside its claim's transaction, after its write, so that a pause
    # made at any time before that write undoes the claim.
    job = queued_job(user, 1)
    lifecycle.pause_claims("update", seconds=60)
    seen = []
    real = lifecycle.claims_paused

    def look():
        seen.append(Job.objects.get(pk=job.pk).status)
        return real()

    monkeypatch.setattr(lifecycle, "claims_paused", look)
    assert lifecycle.claim_next(node) is None
    assert seen == [Status.RENDERING]  # one look, after the write
    job.refresh_from_db()
    assert (job.status, job.attempts, job.node_id) == (Status.QUEUED, 0, None)
    assert not job.events.filter(to_status=Status.RENDERING).exists()


def comp(name):
    return {"template": {"composition": name}}


def test_supersede_cancels_the_unfinished_jobs_of_the_same_composition(user):
    first = lifecycle.submit(actor="api:t", user=user, project_path="/p/a.aep",
                             path_key="/p/a.aep", config=comp("16x9")).job
    second = lifecycle.submit(actor="api:t", user=user, project_path="/P/A.aep",
                              path_key="/p/a.aep", config=comp("16x9"))
    assert second.superseded == [first.pk]
    first.refresh_from_db()
    assert first.status == Status.CANCELLED
    assert first.events.filter(kind="superseded").exists()


def test_other_compositions_of_the_project_are_left_alone(user):
    wide = lifecycle.submit(actor="api:t", user=user, project_path="/p/a.aep",
                            path_key="/p/a.aep", config=comp("16x9")).job
    tall = lifecycle.submit(actor="api:t", user=user, project_path="/p/a.aep",
                            path_key="/p/a.aep", config=comp("9x16"))
    assert tall.superseded == []
    assert Job.objects.get(pk=wide.pk).status == Status.PENDING


def test_a_job_awaiting_review_counts_as_unfinished(user):
    waiting = lifecycle.submit(actor="api:t", user=user, project_path="/p/a.aep",
                               path_key="/p/a.aep", config=comp("Main"), review=True).job
    Job.objects.filter(pk=waiting.pk).update(status=Status.AWAITING_REVIEW)
    newer = lifecycle.submit(actor="api:t", user=user, project_path="/p/a.aep",
                             path_key="/p/a.aep", config=comp("Main"))
    assert newer.superseded == [waiting.pk]
    Job.objects.filter(pk=newer.job.pk).update(status=Status.AWAITING_REVIEW)
    # The database refuses a second unfinished job of the same composition.
    with pytest.raises(IntegrityError), transaction.atomic():
        Job.objects.create(status=Status.QUEUED, path_key="/p/a.aep", config=comp("Main"))


def test_previews_go_ahead_of_final_renders_of_the_same_priority(user, node):
    final_old = queued_job(user, 1, created_offset=-30)
    preview_new = queued_job(user, 2, created_offset=0)
    Job.objects.filter(pk=preview_new.pk).update(review=True, needs_preview=True)
    urgent_final = queued_job(user, 3, priority=5, created_offset=10)
    order = [lifecycle.claim_next(node).pk for _ in range(3)]
    assert order == [urgent_final.pk, preview_new.pk, final_old.pk]


def test_a_preview_waits_for_review_then_the_approval_queues_the_final(user, node):
    job = queued_job(user, 1)
    # frames_total: what the preflight read from the project; the final renders the same.
    Job.objects.filter(pk=job.pk).update(review=True, needs_preview=True, frames_total=50)
    claimed = lifecycle.claim_next(node)
    assert not lifecycle.approve(job.pk, actor="alice@studio.test")  # not reviewable yet
    assert lifecycle.preview_ready(claimed.pk, claimed.lease)
    job.refresh_from_db()
    assert (job.status, job.progress, job.finished_at) == (Status.AWAITING_REVIEW, 100, None)

    assert lifecycle.approve(job.pk, actor="alice@studio.test", comment="good")
    assert not lifecycle.reject(job.pk, actor="ada@studio.test", comment="too late")
    job.refresh_from_db()
    assert (job.status, job.needs_preview, job.attempts, job.lease) == (
        Status.QUEUED, False, 0, None)
    final = lifecycle.claim_next(node)
    assert (final.pk, final.needs_preview, final.attempts, final.frames_total) == (
        job.pk, False, 1, 50)


def test_a_rejected_preview_ends_the_job(user, node):
    queued_job(user, 1)
    claimed = lifecycle.claim_next(node)
    Job.objects.filter(pk=claimed.pk).update(review=True, needs_preview=True)
    lifecycle.preview_ready(claimed.pk, claimed.lease)
    assert lifecycle.reject(claimed.pk, actor="ada@studio.test", comment="Wrong logo")
    claimed.refresh_from_db()
    assert claimed.status == Status.REJECTED and claimed.is_final
    assert claimed.error == "Rejected by ada@studio.test: Wrong logo"
    assert claimed.events.get(kind="rejected").actor == "ada@studio.test"
    # Finished for good: neither cancel nor retry moves it.
    assert not lifecycle.cancel(claimed.pk, actor="x")
    assert not lifecycle.retry(claimed.pk, actor="x")


def test_cancel_reaches_a_job_awaiting_review(user):
    job = queued_job(user, 1)
    Job.objects.filter(pk=job.pk).update(status=Status.AWAITING_REVIEW)
    assert lifecycle.cancel(job.pk, actor="ada@studio.test")
    assert Job.objects.get(pk=job.pk).status == Status.CANCELLED


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


@pytest.mark.django_db(transaction=True)
def test_racing_submissions_leave_one_job_per_composition(user):
    def submit(n):
        return lifecycle.submit(actor="api:t", user=user, project_path="/p/a.aep",
                                path_key="/p/a.aep", config=comp("16x9" if n % 2 else "9x16"))

    submitted, errors = at_once(12, submit)

    assert errors == [] and len(submitted) == 12
    assert Job.objects.count() == 12
    alive = Job.objects.exclude(status=Status.CANCELLED)
    assert sorted(job.config["template"]["composition"] for job in alive) == ["16x9", "9x16"]

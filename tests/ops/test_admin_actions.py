"""Emergency stop, clear queue and restart engine through the admin API, with a
real render worker rendering real (simulated) renders."""

from __future__ import annotations

import time

import pytest
from rest_framework.test import APIClient

from jobs import lifecycle
from jobs.models import Job, JobEvent, RenderNode, Status
from systemadmin.models import SystemEvent
from tests.helpers.common import wait_for
from tests.helpers.farm import render_processes, status_of, submit, use_aerender, wait_status

LONG = {"frames": 3000, "frame_seconds": 0.02, "spawn_child": True}
ADMIN_EMAIL = "admin@studio.test"


def wait_rendering(job, timeout=30):
    wait_status(job, Status.RENDERING, timeout=timeout)
    return wait_for(lambda: render_processes(job.pk), timeout=timeout,
                    message="the render process never started")


def cancel_event(job) -> JobEvent:
    return job.events.get(kind="cancelled")


@pytest.fixture
def farm_with_jobs(farm, user, other_user):
    """One worker rendering a long job, two jobs queued behind it, one just submitted."""
    use_aerender(farm)
    worker = farm.start_worker()
    rendering = submit(farm, user, "long.aep", **LONG)
    wait_rendering(rendering)
    queued = [submit(farm, user, "q1.aep"), submit(farm, other_user, "q2.aep")]
    for job in queued:
        wait_status(job, Status.QUEUED)
    # One just submitted (pending or validating when the admin acts).
    pending = submit(farm, user, "new.aep")
    return worker, rendering, queued, pending


@pytest.mark.slow
def test_emergency_stop_cancels_everything_and_kills_the_render(farm, farm_with_jobs,
                                                                 admin_client):
    worker, rendering, queued, pending = farm_with_jobs
    response = admin_client.post("/api/system/emergency-stop")
    stopped = time.monotonic()
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["count"] == 4 and body["actor"] == ADMIN_EMAIL
    wait_for(lambda: not render_processes(node=farm.node()), timeout=2,
             message="render processes survived the emergency stop")
    assert time.monotonic() - stopped < 2.5
    for job in [rendering, *queued, pending]:
        assert status_of(job) == Status.CANCELLED
        event = cancel_event(job)
        assert event.actor == ADMIN_EMAIL
        assert event.message == "Emergency stop by Ada Admin"
    assert SystemEvent.objects.get(kind="emergency_stop").actor == ADMIN_EMAIL
    # The worker survives and goes back to waiting for work.
    time.sleep(0.5)
    assert worker.poll() is None
    later = submit(farm, rendering.user, "after.aep", frames=4)
    wait_status(later, Status.COMPLETED)


@pytest.mark.slow
def test_clear_queue_cancels_waiting_jobs_and_leaves_the_render(farm, farm_with_jobs,
                                                                admin_client):
    worker, rendering, queued, pending = farm_with_jobs
    response = admin_client.post("/api/system/clear-queue")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["count"] == 3
    assert set(body["job_ids"]) == {str(j.pk) for j in [*queued, pending]}
    for job in [*queued, pending]:
        assert status_of(job) == Status.CANCELLED
        assert cancel_event(job).actor == ADMIN_EMAIL
        assert cancel_event(job).message == "Queue cleared by Ada Admin"
    time.sleep(1)
    assert status_of(rendering) == Status.RENDERING
    assert render_processes(rendering.pk)
    assert SystemEvent.objects.get(kind="clear_queue").message.startswith(
        "Queue cleared by Ada Admin: 3 waiting job(s)")
    lifecycle.cancel(rendering.pk, actor="test")
    wait_for(lambda: not render_processes(node=farm.node()), timeout=3)


@pytest.mark.slow
def test_restart_engine_requeues_the_render_and_the_worker_carries_on(farm, user,
                                                                      admin_client):
    use_aerender(farm)
    # The default heartbeat interval: the command must not wait for a heartbeat.
    farm.configure(HEARTBEAT_SECONDS=5)
    worker = farm.start_worker()
    first = submit(farm, user, "long.aep", **LONG)
    first_procs = wait_rendering(first)
    lease = Job.objects.get(pk=first.pk).lease
    node = RenderNode.objects.get(name=farm.node())
    second = submit(farm, user, "next.aep", frames=4)
    wait_status(second, Status.QUEUED)

    response = admin_client.post("/api/system/restart-engine", {}, format="json")
    asked = time.monotonic()
    assert response.status_code == 200, response.content
    assert response.json()["nodes"] == [farm.node()]
    assert response.json()["job_ids"] == [str(first.pk)]

    # Within 2 s the worker has the command, killed the render and requeued the job.
    wait_for(lambda: first.events.filter(kind="requeued").exists(), timeout=2,
             message="the worker did not act on the restart command within 2 s")
    assert time.monotonic() - asked < 2
    wait_for(lambda: not any(p.is_running() and p.status() != "zombie" for p in first_procs),
             timeout=2, message="the old render survived the restart")
    requeued = first.events.get(kind="requeued")
    assert "restart" in requeued.message
    assert first.events.get(kind="restart_requested").actor == ADMIN_EMAIL
    assert SystemEvent.objects.get(kind="restart_engine").actor == ADMIN_EMAIL

    # Restarted in-process: same pid, registered again, command consumed.
    wait_for(lambda: RenderNode.objects.get(pk=node.pk).started_at > node.started_at,
             timeout=10, message="the worker did not restart")
    node.refresh_from_db()
    assert node.command == "" and node.pid == worker.pid
    assert "restarting the render engine" in farm.worker_log(worker)

    # The requeued job (oldest) renders again, its attempt not counted.
    wait_status(first, Status.RENDERING)
    assert Job.objects.get(pk=first.pk).attempts == 1
    assert Job.objects.get(pk=first.pk).lease != lease
    lifecycle.cancel(first.pk, actor="test")
    # ...and then the worker renders the next job and goes idle.
    wait_status(second, Status.COMPLETED, Status.FAILED)
    assert second.status == Status.COMPLETED, second.error
    assert worker.poll() is None
    # A completed render's process may still be ending (its guard sweeping) for a few
    # milliseconds after COMPLETED.
    wait_for(lambda: not render_processes(node=farm.node()), timeout=3,
             message="the completed render's processes did not end")


# --- Permissions and validation (no worker) -----------------------------------------------

POSTS = ["/api/system/emergency-stop", "/api/system/clear-queue",
         "/api/system/restart-engine", "/api/system/update/execute"]
GETS = ["/api/system/health", "/api/system/update/check", "/api/system/update/status",
        "/api/system/queue-history", "/api/system/errors", "/api/system/events"]


@pytest.mark.parametrize("url", POSTS + GETS)
def test_only_admin_sessions_may_use_the_system_api(url, user_client, api_client, db):
    method = "post" if url in POSTS else "get"
    for client in (APIClient(), user_client, api_client):
        response = getattr(client, method)(url)
        assert response.status_code == 403, (url, response.content)
        assert "detail" in response.json()
    assert not SystemEvent.objects.exists()


def test_admin_posts_need_the_csrf_token(admin, db):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(admin)
    response = client.post("/api/system/clear-queue")
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
    assert not SystemEvent.objects.exists()


def test_restart_of_an_unknown_node_is_404(admin_client):
    RenderNode.objects.create(name="node-a")
    response = admin_client.post("/api/system/restart-engine", {"node": "node-z"},
                                 format="json")
    assert response.status_code == 404
    assert "node-z" in response.json()["detail"]
    assert RenderNode.objects.get(name="node-a").command == ""


def test_restart_targets_one_node_or_every_live_node(admin_client):
    from datetime import timedelta

    from django.utils import timezone

    RenderNode.objects.create(name="node-a")
    RenderNode.objects.create(name="node-b")
    RenderNode.objects.create(name="node-dead", last_heartbeat=timezone.now()
                              - timedelta(hours=1))
    response = admin_client.post("/api/system/restart-engine", {"node": "node-b"},
                                 format="json")
    assert response.json()["nodes"] == ["node-b"]
    assert dict(RenderNode.objects.values_list("name", "command")) == {
        "node-a": "", "node-b": "restart", "node-dead": ""}
    response = admin_client.post("/api/system/restart-engine")
    assert sorted(response.json()["nodes"]) == ["node-a", "node-b"]


def test_actions_with_nothing_to_do_are_still_recorded(admin_client):
    assert admin_client.post("/api/system/emergency-stop").json()["count"] == 0
    assert admin_client.post("/api/system/clear-queue").json()["count"] == 0
    assert admin_client.post("/api/system/restart-engine").json()["nodes"] == []
    kinds = sorted(SystemEvent.objects.values_list("kind", flat=True))
    assert kinds == ["clear_queue", "emergency_stop", "restart_engine"]
    events = admin_client.get("/api/system/events").json()["events"]
    assert {e["actor"] for e in events} == {ADMIN_EMAIL}


def test_emergency_stop_ends_previews_awaiting_review_and_clear_queue_leaves_them(
        admin_client, user):
    waiting = Job.objects.create(user=user, status=Status.AWAITING_REVIEW, review=True)
    queued = Job.objects.create(user=user, status=Status.QUEUED)

    assert admin_client.post("/api/system/clear-queue").json()["count"] == 1
    # The queue holds renders; a preview waiting for a person is not one.
    assert status_of(waiting) == Status.AWAITING_REVIEW and status_of(queued) == "CANCELLED"

    assert admin_client.post("/api/system/emergency-stop").json()["count"] == 1
    assert status_of(waiting) == Status.CANCELLED
    assert "Emergency stop" in cancel_event(waiting).message

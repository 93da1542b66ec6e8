"""The render worker with real processes: nexrender CLI → aerender simulator.

Each test starts real ``render_worker`` processes against the test database
and watches the render process trees with psutil.
"""

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta

import psutil
import pytest
from django.utils import timezone

from jobs import lifecycle
from jobs.models import Job, JobEvent, RenderNode, Status
from jobs.node.procs import MARKER_ENV, SPARE_MARK
from tests.helpers.common import make_project, wait_for
from tests.helpers.farm import render_processes, status_of, submit, wait_status

pytestmark = pytest.mark.slow


def leases_running(job_id) -> set[str]:
    leases = set()
    for proc in render_processes(job_id):
        try:
            marker = proc.environ()[MARKER_ENV]
        except (psutil.Error, KeyError, OSError):
            continue
        if SPARE_MARK not in marker:  # a spare's own marker names no claim
            leases.add(marker.rsplit("/", 1)[-1])
    return leases


def wait_rendering_process(job, timeout=60):
    wait_status(job, Status.RENDERING, timeout=timeout)
    # The simulator itself (not just nexrender starting up) must be running.
    return wait_for(lambda: [p for p in render_processes(job.pk) if _is_simulator(p)],
                    timeout=timeout, message="the simulator never started")


def _is_simulator(proc):
    try:
        return any("aerender" in part for part in proc.cmdline()[:3])
    except psutil.Error:
        return False


@pytest.fixture
def long_render():
    return {"frames": 2000, "frame_seconds": 0.02, "spawn_child": True}


def test_a_job_renders_through_nexrender_into_the_output_folder(farm, user, nexrender_cli):
    farm.start_worker()
    job = submit(farm, user, frames=12)
    wait_status(job, Status.COMPLETED, Status.FAILED)
    assert job.status == Status.COMPLETED, job.log.text()
    # Follow-ups after completion (poster frame, preview video) add events, not statuses.
    statuses = [e.to_status for e in job.events.exclude(kind="progress") if e.to_status]
    assert statuses == ["PENDING", "VALIDATING", "QUEUED", "RENDERING", "COMPLETED"]
    output = farm.dropbox / "renders"
    # Stored relative to the output folder, so every machine finds it in its own.
    assert "/" not in job.output_path and job.output_path.endswith(".avi")
    assert os.path.getsize(output / job.output_path) == job.output_size > 0
    assert (job.progress, job.frames_done, job.frames_total) == (100, 12, 12)
    log = job.log.text()
    assert "Finished composition “main”." in log and "Total Time Elapsed:" in log
    assert (job.error, job.error_code, job.warnings) == ("", "", [])
    # Nothing partial left for Dropbox to sync, and the temp folder is gone.
    assert [p.name for p in output.iterdir()] == [job.output_path]
    assert not any((farm.tmp_path / "render-tmp").glob(f"{job.pk.hex}*"))


def test_cancel_kills_the_whole_render_tree_within_two_seconds(farm, user, long_render,
                                                                nexrender_cli):
    farm.start_worker()
    job = submit(farm, user, **long_render)
    procs = wait_rendering_process(job)
    assert len(render_processes(job.pk)) >= 3  # guard, nexrender, simulator, its child
    lifecycle.cancel(job.pk, actor="admin@studio.test")
    started = time.monotonic()
    wait_for(lambda: not render_processes(job.pk), timeout=2,
             message="render processes survived the cancel")
    assert time.monotonic() - started < 2
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in procs)
    assert status_of(job) == Status.CANCELLED


def test_a_new_submission_kills_the_running_render_of_the_same_project(
        farm, user, long_render, nexrender_cli):
    farm.start_worker()
    first = submit(farm, user, **long_render)
    wait_rendering_process(first)
    second = submit(farm, user, frames=8)  # the same project, saved again
    wait_for(lambda: not render_processes(first.pk), timeout=3,
             message="the superseded render is still running")
    assert status_of(first) == Status.CANCELLED
    wait_status(second, Status.COMPLETED, Status.FAILED)
    assert second.status == Status.COMPLETED
    assert Job.objects.filter(status=Status.COMPLETED).count() == 1


def test_sigterm_requeues_the_render_without_using_an_attempt(farm, user, long_render,
                                                              nexrender_cli):
    worker = farm.start_worker()
    job = submit(farm, user, **long_render)
    wait_rendering_process(job)
    job.refresh_from_db()
    attempts_before = job.attempts - 1  # the claim counted one
    worker.send_signal(signal.SIGTERM)
    started = time.monotonic()
    worker.wait(timeout=10)
    assert time.monotonic() - started < 10
    assert status_of(job) == Status.QUEUED
    assert job.attempts == attempts_before
    assert not render_processes(job.pk)
    assert job.events.filter(kind="requeued").exists()


def test_a_crashing_render_is_retried_then_fails_with_log_and_reason(farm, user,
                                                                     nexrender_cli):
    farm.start_worker()
    job = submit(farm, user, crash={"after_frames": 2, "exit_code": 3})
    wait_status(job, Status.FAILED)
    assert job.attempts == 3
    assert job.error.startswith("Failed after 3 attempt(s): After Effects stopped after frame "
                                "2 of 10 and printed no error (the renderer exited with code")
    assert job.error_code == "crashed"
    assert job.events.filter(kind="retry").count() == 2
    log = job.log.text()
    assert log.count("=== attempt") == 3
    assert "  0:00:00:01 (2): 0 Seconds" in log


def test_a_stalled_render_is_killed_and_counted(farm, user, nexrender_cli):
    farm.configure(RENDER_STALL_SECONDS=2, MAX_RENDER_ATTEMPTS=1)
    farm.start_worker()
    job = submit(farm, user, frames=50, spawn_child=True, hang={"after_frames": 3})
    wait_status(job, Status.FAILED, timeout=40)
    assert "printed nothing for 2 s" in job.error
    assert job.error_code == "stalled"
    assert job.attempts == 1
    assert not render_processes(job.pk)


def test_a_restarted_node_kills_what_its_predecessor_left(farm, user):
    # A predecessor's render that survived it: a process carrying its marker.
    node = farm.node("node-a")
    path = make_project(farm.dropbox, frames=3)
    job = Job.objects.create(user=user, status=Status.RENDERING, project_path=str(path),
                             engine=farm.settings.RENDER_ENGINE, attempts=1,
                             lease="00000000-0000-0000-0000-000000000001",
                             config={"template": {"composition": "main"}},
                             node=RenderNode.objects.create(name=node))
    env = dict(os.environ, **{MARKER_ENV: f"{node}/{job.pk}/{job.lease}"})
    leftover = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], env=env)
    try:
        farm.start_worker("node-a")
        leftover.wait(timeout=20)
        takeover = wait_for(lambda: job.events.filter(kind="retry").first(), timeout=10)
        assert "restarted" in takeover.message
        # Requeued as a crashed attempt, then rendered again by the new worker.
        wait_status(job, Status.COMPLETED, Status.FAILED)
        assert (job.status, job.attempts) == (Status.COMPLETED, 2)
    finally:
        if leftover.poll() is None:
            leftover.kill()


@pytest.mark.postgres
def described(proc) -> str:
    try:
        return f"{proc.pid} {proc.status()} {' '.join(proc.cmdline()[:3])}"
    except psutil.Error as exc:
        return f"{proc.pid} ({exc})"


def test_a_killed_node_is_taken_over_and_never_renders_twice(farm, user, nexrender_cli):
    farm.configure(NODE_TIMEOUT_SECONDS=4, HEARTBEAT_SECONDS=0.5)
    node_a = farm.start_worker("node-a")
    # Long enough that node-a is still rendering once node-b is up (a worker's start
    # takes seconds on a busy machine).
    job = submit(farm, user, frames=400, frame_seconds=0.02, spawn_child=True)
    wait_rendering_process(job)
    farm.start_worker("node-b")
    wait_for(lambda: RenderNode.objects.filter(name=farm.node("node-b")).exists(), timeout=20)
    job.refresh_from_db()
    assert job.status == Status.RENDERING and job.node.name == farm.node("node-a"), (
        "node-a finished before node-b was up: nothing to take over")

    most_at_once, stop = [0], threading.Event()

    def watch():
        while not stop.is_set():
            most_at_once[0] = max(most_at_once[0], len(leases_running(job.pk)))
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        os.kill(node_a.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        # The guard takes the orphaned render down with its worker. Only node-a's
        # processes: node-b may take the job over soon after the node timeout, and a
        # scan of the process table on a busy machine can outlast the wait.
        dead_node, left = farm.node("node-a"), []

        def gone_from_the_dead_node():
            left[:] = render_processes(job.pk, node=dead_node)
            return not left

        try:
            wait_for(gone_from_the_dead_node, timeout=3)
        except AssertionError:
            raise AssertionError("the dead node's render kept running: "
                                 f"{[described(proc) for proc in left]}") from None
        wait_status(job, Status.COMPLETED, Status.FAILED, timeout=90)
    finally:
        stop.set()
        watcher.join()
    assert job.status == Status.COMPLETED
    assert job.node.name == farm.node("node-b")
    assert job.attempts == 2
    takeover = job.events.get(kind="node_lost")
    assert f"{farm.node('node-a')} stopped responding" in takeover.message
    assert time.monotonic() - killed_at >= 4  # not before the node timeout
    assert most_at_once[0] == 1


@pytest.mark.postgres
def test_two_nodes_render_fifty_jobs_once_each_in_priority_order(farm, user, settings):
    # The direct aerender engine keeps fifty renders quick; the claim logic is
    # the same for every engine.
    farm.configure(RENDER_ENGINE="aerender")
    jobs = []
    base = timezone.now() - timedelta(minutes=5)
    for n in range(50):
        path = make_project(farm.dropbox, f"p{n:02}.aep", frames=3, frame_seconds=0.01)
        jobs.append(Job.objects.create(
            user=user, status=Status.QUEUED, engine="aerender", priority=(n * 7) % 5,
            project_path=str(path), path_key=str(path).casefold(),
            created_at=base + timedelta(seconds=n),
            config={"template": {"composition": "main"}}))
    expected = [j.pk for j in sorted(jobs, key=lambda j: (-j.priority, j.created_at))]
    farm.start_worker("node-a")
    farm.start_worker("node-b")
    wait_for(lambda: not Job.objects.exclude(status__in=[Status.COMPLETED,
                                                         Status.FAILED]).exists(),
             timeout=240, interval=0.5)
    assert Job.objects.filter(status=Status.COMPLETED).count() == 50
    claims = list(JobEvent.objects.filter(to_status=Status.RENDERING, kind="status")
                  .order_by("created_at", "id").values_list("job_id", flat=True))
    assert sorted(claims) == sorted(expected)  # each rendered exactly once
    assert set(Job.objects.values_list("node__name", flat=True)) == {farm.node("node-a"),
                                                                     farm.node("node-b")}
    # With two nodes claiming at once a claim may overtake the other by one place.
    for position, job_id in enumerate(claims):
        assert abs(expected.index(job_id) - position) <= 1, (position, job_id)
    assert set(Job.objects.values_list("attempts", flat=True)) == {1}


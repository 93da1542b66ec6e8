"""Stopping a node the way PM2 does on Windows (outright, no signal handler:
SIGKILL here) after telling it through the database first: nothing renders
at the kill, so no job is lost and no attempt is used."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from jobs.models import Job, RenderNode, Status
from tests.faults.conftest import report, wait_mid_render
from tests.helpers.common import REPO, wait_for
from tests.helpers.farm import RenderWatcher, render_processes, wait_status

pytestmark = pytest.mark.slow


def node_command(farm, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "manage.py"), "node_command", *args],
                          cwd=REPO, env=farm.env(), capture_output=True, text=True,
                          timeout=timeout)


def kill_like_pm2(worker) -> None:
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait(timeout=10)


def command_mid_render(farm, job, action: str):
    """Start node-a, and once it renders ``job``, run ``node_command node-a ACTION --wait``."""
    worker = farm.start_worker("node-a")
    wait_mid_render(job)
    asked = time.monotonic()
    done = node_command(farm, farm.node("node-a"), action, "--wait", "--timeout", "60")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Safe to restart or stop" in done.stdout
    return worker, done, time.monotonic() - asked


def test_stop_then_kill_puts_the_render_back_without_using_an_attempt(farm, queued_jobs):
    first, second = queued_jobs(2, frames=400, frame_seconds=0.02)
    node = farm.node("node-a")
    with RenderWatcher(farm) as watcher:
        worker, _done, waited = command_mid_render(farm, first, "stop")
        # Back in the queue at once, the node parked: it claims nothing.
        first.refresh_from_db()
        assert (first.status, first.attempts) == (Status.QUEUED, 0)
        assert "stop command" in first.events.get(kind="requeued").message
        assert first.events.filter(kind="stop_requested").exists()
        assert RenderNode.objects.get(name=node).command == "parked"
        assert not render_processes(node=node)
        time.sleep(1.0)  # a node that still claimed would have taken a job by now
        assert set(Job.objects.values_list("status", flat=True)) == {Status.QUEUED}

        kill_like_pm2(worker)
        assert set(Job.objects.values_list("status", "attempts")) == {(Status.QUEUED, 0)}

        # PM2 starts it again: it works normally and uses one attempt per job.
        farm.start_worker("node-a")
        wait_status(first, Status.COMPLETED, Status.FAILED, timeout=90)
        assert RenderNode.objects.get(name=node).command == ""
        lifecycle_cancel(second)
    report("stop, then SIGKILL", stop_wait_seconds=round(waited, 2),
           attempts_after_restart=first.attempts, most_renders_at_once=watcher.worst)
    assert first.status == Status.COMPLETED and first.attempts == 1
    assert watcher.worst == 1


def test_drain_then_kill_finishes_the_render_and_starts_no_other(farm, queued_jobs):
    # Long enough that the drain (a Django process starting) lands mid-render on a busy machine.
    first, second = queued_jobs(2, frames=200, frame_seconds=0.05)
    with RenderWatcher(farm) as watcher:
        worker, done, _waited = command_mid_render(farm, first, "drain")
        # The render in progress finished; the next job never started.
        first.refresh_from_db()
        second.refresh_from_db()
        assert (first.status, first.attempts) == (Status.COMPLETED, 1)
        assert (second.status, second.attempts) == (Status.QUEUED, 0)
        assert "draining" in done.stdout and "parked" in done.stdout
        kill_like_pm2(worker)
        second.refresh_from_db()
        assert (second.status, second.attempts) == (Status.QUEUED, 0)
    report("drain, then SIGKILL", first=first.status, second=second.status,
           second_attempts=second.attempts, most_renders_at_once=watcher.worst)
    assert watcher.worst == 1


def test_resume_lets_a_parked_node_claim_again(farm, queued_jobs):
    farm.start_worker("node-a")
    node = farm.node("node-a")
    wait_for(lambda: RenderNode.objects.filter(name=node).exists(), timeout=30)
    assert node_command(farm, "--all", "drain", "--wait").returncode == 0
    assert RenderNode.objects.get(name=node).command == "parked"
    [job] = queued_jobs(1, frames=5)
    time.sleep(1.0)
    assert Job.objects.get(pk=job.pk).status == Status.QUEUED
    done = node_command(farm, node, "resume")
    assert done.returncode == 0 and "resume requested" in done.stdout
    wait_status(job, Status.COMPLETED, Status.FAILED, timeout=60)
    assert job.status == Status.COMPLETED


def lifecycle_cancel(job) -> None:
    from jobs import lifecycle

    lifecycle.cancel(job.pk, actor="test")


def test_a_worker_over_its_memory_limit_exits_between_renders(farm, queued_jobs):
    # PM2's max_memory_restart kills mid-render; the worker's own, lower limit
    # makes it exit where nothing is lost, for PM2 or systemd to start it afresh.
    [job] = queued_jobs(1, frames=5)
    worker = farm.start_worker("node-a", WORKER_MEMORY_LIMIT_MB=1)
    assert worker.wait(timeout=60) == 0
    assert "WORKER_MEMORY_LIMIT_MB=1" in farm.worker_log(worker)
    job.refresh_from_db()
    assert (job.status, job.attempts) == (Status.QUEUED, 0)
    assert RenderNode.objects.get(name=farm.node("node-a")).stopped_at is not None

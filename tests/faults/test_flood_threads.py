"""Renders that flood their output and are cancelled leave no reader thread
behind in the worker: nothing in a node grows with the renders it ran."""

from __future__ import annotations

import time

import psutil
import pytest

from jobs import lifecycle
from jobs.models import Job, RenderNode, Status
from tests.faults.conftest import report
from tests.helpers.common import wait_for
from tests.helpers.farm import render_processes, spare_processes, wait_status

pytestmark = pytest.mark.slow


def settled_threads(process: psutil.Process, quiet: float = 0.5, timeout: float = 30) -> int:
    """``process``'s thread count once it has not changed for ``quiet`` seconds."""
    deadline = time.monotonic() + timeout
    count, since = process.num_threads(), time.monotonic()
    while time.monotonic() < deadline:
        now = process.num_threads()
        if now != count:
            count, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return count
        time.sleep(0.05)
    raise AssertionError(f"the worker's thread count never settled (last {count})")


def test_cancelled_floods_leave_the_worker_with_the_threads_it_started_with(farm,
                                                                            queued_jobs):
    worker = farm.start_worker("node-a")
    node = farm.node("node-a")
    wait_for(lambda: RenderNode.objects.filter(name=node).exists(), timeout=30)
    process = psutil.Process(worker.pid)
    # main, heartbeat, contact watch, validator, chores, dead nodes, follow-ups
    wait_for(lambda: process.num_threads() >= 6, timeout=10)
    # Idle, the node also keeps the next render's process waiting (a spare, read by a
    # thread of its own): count with it. The spare's processes show before the worker
    # has started its reader, so the count is taken once it stays put.
    wait_for(lambda: spare_processes(node), timeout=30, message="no spare while idle")
    idle = settled_threads(process)
    jobs = queued_jobs(3, frames=400, frame_seconds=0, flood_mb=4000)
    for job in jobs:
        wait_for(lambda job=job: Job.objects.filter(pk=job.pk, status=Status.RENDERING,
                                                    render_pid__isnull=False).exists(),
                 timeout=60, message="the flood never started")
        wait_for(lambda job=job: len(render_processes(job.pk)) >= 2, timeout=30)
        lifecycle.cancel(job.pk, actor="test")
        wait_status(job, Status.CANCELLED)
        wait_for(lambda job=job: not render_processes(job.pk), timeout=5)
    try:
        wait_for(lambda: process.num_threads() <= idle, timeout=10)
    except AssertionError:
        raise AssertionError(f"threads leaked: {process.num_threads()} after the floods, "
                             f"{idle} when idle") from None
    report("cancelled floods", renders=len(jobs), threads_idle=idle,
           threads_after=process.num_threads())

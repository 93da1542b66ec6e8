"""A render node whose database goes silent mid-render (its host vanished from
the network: queries neither answer nor fail) while another node is up.

The other node takes the job over once the silent node's heartbeat is older
than NODE_TIMEOUT_SECONDS. The silent node's render loop and heartbeat are
both stuck in queries by then, so only jobs.node.contact, which never touches
the database, can stop its render first. Watched on the live processes."""

from __future__ import annotations

import time

import pytest

from jobs.models import Job, RenderNode, Status
from tests.faults.conftest import report, wait_mid_render
from tests.helpers.common import wait_for
from tests.helpers.farm import RenderWatcher, render_processes

pytestmark = pytest.mark.slow

TIMEOUT = 4


def test_a_node_whose_database_goes_silent_stops_its_render_before_another_takes_over(
        farm, queued_jobs, tmp_path):
    farm.configure(NODE_TIMEOUT_SECONDS=TIMEOUT, HEARTBEAT_SECONDS=0.5)
    [job] = queued_jobs(1, frames=600, frame_seconds=0.02)  # ~12 s
    gate = tmp_path / "database-silent"
    with RenderWatcher(farm) as watcher:
        silent = farm.start_worker("silent", hooked=True, TEST_DB_HANG_FILE=str(gate))
        wait_mid_render(job)
        farm.start_worker("other")
        wait_for(lambda: RenderNode.objects.filter(name=farm.node("other")).exists(),
                 timeout=30)
        gate.touch()
        went_silent = time.monotonic()
        # Its render stops by itself, before the other node may think it dead.
        wait_for(lambda: not render_processes(job.pk), timeout=TIMEOUT * 2,
                 message="the silent node kept rendering")
        stopped_after = time.monotonic() - went_silent
        assert silent.poll() is None  # the worker lives on, stuck in a query
        wait_for(lambda: Job.objects.filter(pk=job.pk, status=Status.COMPLETED).exists(),
                 timeout=90, message="the other node did not finish the job")
        gate.unlink()  # the network is back: the silent node's late writes change nothing
        wait_for(lambda: not render_processes(job.pk), timeout=10)
    job.refresh_from_db()
    report("database silent mid-render", stopped_after_s=round(stopped_after, 2),
           most_renders_at_once=watcher.worst, attempts=job.attempts,
           finished_on=job.node.name)
    assert stopped_after < TIMEOUT
    assert watcher.worst == 1
    assert job.status == Status.COMPLETED and job.node.name == farm.node("other")

"""A publish slower than NODE_TIMEOUT_SECONDS: the node stays alive (its
heartbeat has its own thread), so the job completes once and its output stays;
and a stop request during that publish is honoured at once."""

from __future__ import annotations

import os
import signal
import time

import pytest

from jobs.models import Job, JobEvent, Phase, Status
from jobs.submission.paths import output_file
from tests.faults.conftest import report
from tests.helpers.common import wait_for
from tests.helpers.farm import RenderWatcher, wait_status

pytestmark = pytest.mark.slow

TIMEOUT = 3
PUBLISH = 8


def test_a_publish_longer_than_the_node_timeout_completes_once(farm, queued_jobs):
    farm.configure(NODE_TIMEOUT_SECONDS=TIMEOUT, HEARTBEAT_SECONDS=0.5)
    [job] = queued_jobs(1, frames=10, frame_seconds=0.02)
    with RenderWatcher(farm) as watcher:
        farm.start_worker("slow", hooked=True, TEST_SLOW_PUBLISH_SECONDS=PUBLISH)
        wait_for(lambda: Job.objects.get(pk=job.pk).phase == Phase.PUBLISHING, timeout=60,
                 message="the render never reached its publish")
        publishing = time.monotonic()
        # An idle node that would take over a job of a node it thinks dead.
        farm.start_worker("other")
        wait_status(job, Status.COMPLETED, Status.FAILED, timeout=60)
        published_in = time.monotonic() - publishing

    claims = job.events.filter(to_status=Status.RENDERING, kind="status")
    report("slow publish", node_timeout=TIMEOUT, publish_seconds=round(published_in, 1),
           attempts=job.attempts, claims=claims.count(), most_renders_at_once=watcher.worst)
    assert published_in > TIMEOUT
    assert job.status == Status.COMPLETED, job.error
    assert job.attempts == 1 and claims.count() == 1
    assert not JobEvent.objects.filter(kind__in=["node_lost", "retry"]).exists()
    assert watcher.worst == 1
    assert job.node.name == farm.node("slow")
    # The output it published stays, with nothing partial beside it.
    assert output_file(job.output_path).stat().st_size == job.output_size > 0
    assert sorted(os.listdir(farm.dropbox / "renders")) == [job.output_path]


def test_a_stop_during_a_slow_publish_requeues_at_once(farm, queued_jobs):
    [job] = queued_jobs(1, frames=10, frame_seconds=0.02)
    worker = farm.start_worker("slow", hooked=True, TEST_SLOW_PUBLISH_SECONDS=60)
    wait_for(lambda: Job.objects.get(pk=job.pk).phase == Phase.PUBLISHING, timeout=60,
             message="the render never reached its publish")
    worker.send_signal(signal.SIGTERM)
    asked = time.monotonic()
    worker.wait(timeout=15)
    stopped_in = time.monotonic() - asked
    job.refresh_from_db()
    report("stop during publish", stopped_seconds=round(stopped_in, 2), status=job.status,
           attempts=job.attempts)
    assert stopped_in < 5
    assert (job.status, job.attempts) == (Status.QUEUED, 0)
    assert "shutdown" in job.events.get(kind="requeued").message
    renders = farm.dropbox / "renders"
    assert not renders.exists() or os.listdir(renders) == []

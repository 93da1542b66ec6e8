"""A render node whose clock is 90 s behind renders beside a normal one.

Liveness is written and compared on the database's clock, so the slow node
does not look dead to the other (no requeue loop, no double render), and the
other's check does not depend on its own clock either."""

from __future__ import annotations

from datetime import timedelta

import pytest

from jobs.models import Job, JobEvent, RenderNode, Status
from tests.faults.conftest import report
from tests.helpers.common import wait_for
from tests.helpers.farm import RenderWatcher

pytestmark = pytest.mark.slow

SKEW = -90


def test_a_node_ninety_seconds_behind_is_neither_dead_nor_rendering_twice(farm, queued_jobs):
    farm.configure(NODE_TIMEOUT_SECONDS=4, HEARTBEAT_SECONDS=0.5)
    jobs = queued_jobs(6, frames=50, frame_seconds=0.05)  # ~2.5 s each
    slow, normal = farm.node("slow"), farm.node("normal")
    with RenderWatcher(farm) as watcher:
        farm.start_worker("slow", hooked=True, TEST_CLOCK_SKEW_SECONDS=SKEW)
        farm.start_worker("normal")
        ages = []

        def finished():
            ages.extend(node.heartbeat_age.total_seconds() for node in
                        RenderNode.objects.with_liveness().filter(name__in=[slow, normal]))
            return not Job.objects.exclude(status__in=[Status.COMPLETED,
                                                       Status.FAILED]).exists()

        wait_for(finished, timeout=90, interval=0.2, message="the jobs did not finish")

    claims = JobEvent.objects.filter(job__in=jobs, to_status=Status.RENDERING, kind="status")
    by_node = {name: claims.filter(actor=f"node:{name}").count() for name in (slow, normal)}
    # The hook works: what the slow node stamps with its own clock is 90 s behind.
    slow_claim = claims.filter(actor=f"node:{slow}").order_by("id").first()
    normal_claim = claims.filter(actor=f"node:{normal}").order_by("id").first()
    attempts = sorted(Job.objects.filter(pk__in=[j.pk for j in jobs])
                      .values_list("attempts", flat=True))
    report("clock 90 s behind", claims_per_node=by_node, attempts=attempts,
           most_renders_at_once=watcher.worst, max_heartbeat_age=round(max(ages), 2),
           requeues=JobEvent.objects.filter(kind__in=["node_lost", "retry"]).count())
    assert slow_claim is not None and normal_claim is not None, by_node
    assert slow_claim.created_at < normal_claim.created_at - timedelta(seconds=60)
    assert set(Job.objects.filter(pk__in=[j.pk for j in jobs])
               .values_list("status", flat=True)) == {Status.COMPLETED}
    assert attempts == [1] * len(jobs)
    assert claims.count() == len(jobs)
    assert not JobEvent.objects.filter(kind__in=["node_lost", "retry"]).exists()
    assert watcher.worst == 1
    # Both heartbeat ages, measured by the database, stayed far below the timeout.
    assert max(ages) < 4

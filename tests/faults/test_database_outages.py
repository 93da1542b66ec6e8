"""Database outages other than a server restart: a long SQLite lock under a
render, and a node whose row an admin deleted while it renders."""

from __future__ import annotations

import signal
import sqlite3
import time

import pytest
from django.db import connection

from jobs.models import Job, RenderNode, Status
from tests.faults.conftest import report, wait_mid_render
from tests.helpers.common import wait_for
from tests.helpers.farm import RenderWatcher, wait_status

pytestmark = pytest.mark.slow

LOCK_SECONDS = 12  # longer than the 10 s busy timeout: writers get "database is locked"


def test_a_long_sqlite_lock_costs_a_pause_not_the_job(farm, queued_jobs):
    if connection.vendor != "sqlite":
        pytest.skip("an SQLite lock; PostgreSQL has its restart test")
    # Progress writes (every 0.2 s) are then the first to meet the lock, not the
    # claim check (every 2 s).
    farm.configure(WORKER_POLL_SECONDS=2)
    [job] = queued_jobs(1, frames=100, frame_seconds=0.05)  # ~5 s, all inside the lock
    farm.start_worker("node-a")
    wait_mid_render(job, 2)
    locker = sqlite3.connect(connection.settings_dict["NAME"], isolation_level=None,
                             timeout=30)
    try:
        locker.execute("BEGIN EXCLUSIVE")
        locked = time.monotonic()
        time.sleep(LOCK_SECONDS)
    finally:
        locker.execute("COMMIT")
        locker.close()
    released = time.monotonic()
    wait_status(job, Status.COMPLETED, Status.FAILED, timeout=60)
    after = time.monotonic() - released
    report("sqlite lock", lock_seconds=round(released - locked, 1),
           completed_after_release_seconds=round(after, 2), attempts=job.attempts)
    assert job.status == Status.COMPLETED, job.error
    assert job.attempts == 1
    assert job.frames_done == 100 and "Finished composition" in job.log.text()
    assert after < 5


def test_a_node_whose_row_was_deleted_registers_again_and_keeps_its_render(farm,
                                                                           queued_jobs):
    farm.configure(NODE_TIMEOUT_SECONDS=4, HEARTBEAT_SECONDS=0.5)
    [first] = queued_jobs(1, frames=150, frame_seconds=0.03)
    name = farm.node("node-a")
    with RenderWatcher(farm) as watcher:
        farm.start_worker("node-a")
        wait_mid_render(first)
        old = RenderNode.objects.get(name=name)
        old.delete()  # what the Django admin does: the job's node is set to NULL
        deleted = time.monotonic()
        # An idle node that would requeue a job belonging to no node.
        other = farm.start_worker("node-b")
        new = wait_for(lambda: RenderNode.objects.filter(name=name).first(), timeout=10,
                       message="the node did not register again")
        again = time.monotonic() - deleted
        wait_for(lambda: Job.objects.get(pk=first.pk).node_id == new.pk, timeout=10,
                 message="the node did not take its job back")
        wait_status(first, Status.COMPLETED, Status.FAILED, timeout=60)
    report("node row deleted", registered_again_after_seconds=round(again, 2),
           attempts=first.attempts, most_renders_at_once=watcher.worst)
    assert new.pk != old.pk
    assert first.status == Status.COMPLETED and first.attempts == 1
    assert first.node.name == name
    assert not first.events.filter(kind="node_lost").exists()
    assert watcher.worst == 1
    # Alone again, the node claims normally under its new row.
    other.send_signal(signal.SIGTERM)
    other.wait(timeout=15)
    [second] = queued_jobs(1, frames=5)
    wait_status(second, Status.COMPLETED, Status.FAILED, timeout=60)
    assert second.status == Status.COMPLETED and second.node_id == new.pk

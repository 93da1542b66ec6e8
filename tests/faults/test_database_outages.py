"""Database outages other than a server restart: a long SQLite lock under a
render, a node whose row an admin deleted while it renders; and what is no
outage: a write the database refuses (a NUL byte in the log on PostgreSQL)."""

from __future__ import annotations

import signal
import sqlite3
import time
from pathlib import Path

import pytest
from django.db import connection

from jobs.models import FollowUp, Job, JobLog, RenderNode, Status
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
    # Its work after completion (poster frame, preview video) is claimed under the
    # new row too (a claim naming the deleted row would fail for good).
    assert second.follow_ups.exists()
    wait_for(lambda: not second.follow_ups.exclude(status=FollowUp.DONE).exists(),
             timeout=60, message="the follow-ups were never done under the new node row")
    assert set(second.follow_ups.values_list("node_id", flat=True)) == {new.pk}


def test_a_render_that_prints_a_nul_byte_completes_with_its_log(farm, queued_jobs):
    # PostgreSQL stores no NUL in text or jsonb (psycopg: DataError): the log and
    # the warning holding it were refused, retried forever, the job RENDERING for good.
    [job] = queued_jobs(1, frames=5, missing_fonts=[["Bebas\u0000Neue", "Regular"]])
    farm.start_worker("node-a")
    wait_status(job, Status.COMPLETED, Status.FAILED, timeout=60)
    report("nul byte", status=job.status, attempts=job.attempts)
    assert job.status == Status.COMPLETED, job.error
    assert job.attempts == 1
    text = job.log.text()
    assert "Bebas\ufffdNeue" in text and "\x00" not in text
    assert "Finished composition" in text
    assert any("Bebas\ufffdNeue" in str(warning) for warning in job.warnings)


@pytest.fixture
def refused_logs():
    """The database refuses every write of a render log (a trigger: a real
    constraint error, not an outage), as PostgreSQL refuses text with a NUL."""
    table = JobLog._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            for event in ("INSERT", "UPDATE"):
                cursor.execute(f"CREATE TRIGGER refuse_log_{event.lower()} BEFORE {event} "
                               f"ON {table} BEGIN SELECT RAISE(ABORT, 'log refused'); END")
        else:
            cursor.execute("CREATE FUNCTION refuse_log() RETURNS trigger AS $$ BEGIN "
                           "RAISE EXCEPTION 'log refused' USING ERRCODE = 'check_violation'; "
                           "END $$ LANGUAGE plpgsql")
            cursor.execute(f"CREATE TRIGGER refuse_log BEFORE INSERT OR UPDATE ON {table} "
                           "FOR EACH ROW EXECUTE FUNCTION refuse_log()")
    yield
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("DROP TRIGGER refuse_log_insert")
            cursor.execute("DROP TRIGGER refuse_log_update")
        else:
            cursor.execute(f"DROP TRIGGER refuse_log ON {table}")
            cursor.execute("DROP FUNCTION refuse_log()")


def test_a_write_the_database_refuses_fails_the_attempt_instead_of_hanging(farm, queued_jobs,
                                                                            refused_logs):
    farm.configure(MAX_RENDER_ATTEMPTS=2)
    [job] = queued_jobs(1, frames=5)
    worker = farm.start_worker("node-a")
    wait_status(job, Status.FAILED, Status.COMPLETED, timeout=60)
    report("refused log write", status=job.status, attempts=job.attempts, error=job.error)
    assert job.status == Status.FAILED and job.attempts == 2
    assert job.error_code == "database_refused"
    assert "the database refused storing the log" in job.error
    assert "IntegrityError" in job.error
    # Nothing was published for a job that failed.
    assert not job.output_path
    assert not [path for path in Path(farm.settings.RENDER_OUTPUT_DIR).rglob("*")
                if path.is_file()]
    # The node lives on: it renders the next job (its log refused as well, it
    # fails the same way, rather than hanging).
    assert worker.poll() is None

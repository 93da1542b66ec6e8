"""Background file checks: a project is rendered only once Dropbox has fully delivered it."""

import os
import time
from datetime import timedelta

from django.utils import timezone

from jobs import lifecycle
from jobs.models import Job, Status
from jobs.node import validation
from tests.helpers.common import make_project


def submit(user, path, saved_at=None):
    return lifecycle.submit(actor="api:test", user=user, client="test", project_path=str(path),
                            path_key=str(path).casefold(), saved_at=saved_at,
                            config={"template": {"composition": "main"}}).job


def run_until_settled(timeout=10.0, statuses=(Status.QUEUED, Status.FAILED)):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        validation.tick()
        if not Job.objects.exclude(status__in=statuses).exists():
            return
        time.sleep(0.05)
    raise AssertionError("validation did not settle: "
                         f"{list(Job.objects.values_list('status', 'validation_message'))}")


def test_stable_old_file_is_queued(fast_checks, dropbox, user):
    job = submit(user, make_project(dropbox))
    run_until_settled()
    job.refresh_from_db()
    assert job.status == Status.QUEUED
    kinds = list(job.events.values_list("to_status", flat=True))
    assert kinds[:3] == ["PENDING", "VALIDATING", "QUEUED"]


def test_young_file_waits_for_the_minimum_age(fast_checks, dropbox, user):
    fast_checks.MIN_FILE_AGE_SECONDS = 1.0
    path = make_project(dropbox)  # ctime is now, whatever the mtime says
    job = submit(user, path)
    started = time.monotonic()
    validation.tick()
    job.refresh_from_db()
    assert job.status == Status.VALIDATING
    run_until_settled()
    job.refresh_from_db()
    assert job.status == Status.QUEUED
    assert time.monotonic() - started >= 0.9
    # Waiting for age is not a failed check.
    assert job.validation_attempts == 0


def test_growing_file_waits_until_it_stops_changing(fast_checks, dropbox, user):
    path = make_project(dropbox)
    job = submit(user, path)
    deadline = time.monotonic() + 0.8
    while time.monotonic() < deadline:  # Dropbox still writing
        with path.open("a") as fh:
            fh.write(" ")
        validation.tick()
        time.sleep(0.05)
    job.refresh_from_db()
    assert job.status == Status.VALIDATING
    assert "still changing" in job.validation_message
    run_until_settled()
    job.refresh_from_db()
    assert job.status == Status.QUEUED


def test_old_copy_waits_for_the_saved_version(fast_checks, dropbox, user):
    path = make_project(dropbox, age=600)  # the stale copy on this machine
    saved_at = timezone.now() - timedelta(seconds=5)
    job = submit(user, path, saved_at=saved_at)
    for _ in range(5):
        validation.tick()
        time.sleep(0.12)
    job.refresh_from_db()
    assert job.status == Status.VALIDATING
    assert "older than the saved version" in job.validation_message

    # Dropbox delivers the saved version.
    path.write_text('{"frames": 5}')
    stamp = saved_at.timestamp() + 1
    os.utime(path, (stamp, stamp))
    run_until_settled()
    job.refresh_from_db()
    assert job.status == Status.QUEUED


def test_missing_file_fails_after_the_configured_tries(fast_checks, dropbox, user):
    fast_checks.VALIDATION_ATTEMPTS = 4
    job = submit(user, dropbox / "projects" / "never-synced.aep")
    run_until_settled()
    job.refresh_from_db()
    assert job.status == Status.FAILED
    assert "after 4 tries" in job.error
    assert "file not found" in job.error


def test_many_files_validate_at_once(fast_checks, dropbox, user):
    jobs = [submit(user, make_project(dropbox, f"p{i}.aep")) for i in range(30)]
    started = time.monotonic()
    run_until_settled()
    # Thirty files take about one stability window, not thirty.
    assert time.monotonic() - started < 3
    assert Job.objects.filter(pk__in=[j.pk for j in jobs], status=Status.QUEUED).count() == 30


def test_a_due_check_runs_once_even_with_two_validators(fast_checks, dropbox, user):
    job = submit(user, make_project(dropbox))
    validation.tick()  # PENDING -> VALIDATING, first observation
    Job.objects.filter(pk=job.pk).update(validation_next_at=timezone.now())
    assert validation.tick() == 1
    # Another node that read the same row before the claim finds nothing to do.
    assert validation.tick() == 0

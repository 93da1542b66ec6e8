"""Retention: exactly the final jobs past JOB_RETENTION_DAYS go, with their logs
and events; outputs stay; temp folders of renders that are over go."""

from __future__ import annotations

import os
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path
from unittest import mock

import pytest
from django.core.management import call_command
from django.utils import timezone

from jobs.models import Job, JobEvent, JobLog, RenderNode, Status
from jobs.node import retention
from jobs.node.housekeeping import Housekeeper
from tests.helpers.common import wait_for


def make_job(status, *, finished_days=None, created_days=0, name="job.aep", **fields):
    now = timezone.now()
    job = Job.objects.create(
        name=name, status=status, created_at=now - timedelta(days=created_days),
        finished_at=None if finished_days is None else now - timedelta(days=finished_days),
        **fields)
    JobLog.objects.create(job=job, head="aerender output\n", tail="Render Finished\n")
    for kind in ("submitted", "status", "status"):
        JobEvent.objects.create(job=job, kind=kind, actor="system", to_status=status)
    return job


@pytest.fixture
def jobs(db, settings):
    settings.JOB_RETENTION_DAYS = 7
    return {
        "old_completed": make_job(Status.COMPLETED, finished_days=8, created_days=9),
        "old_failed": make_job(Status.FAILED, finished_days=30, created_days=30),
        "old_cancelled": make_job(Status.CANCELLED, finished_days=7.01, created_days=8),
        "old_no_finish_time": make_job(Status.CANCELLED, created_days=10),
        "recent_completed": make_job(Status.COMPLETED, finished_days=6.99, created_days=9),
        "recent_failed": make_job(Status.FAILED, finished_days=1, created_days=1),
        "old_but_queued": make_job(Status.QUEUED, created_days=40),
        "old_but_pending": make_job(Status.PENDING, created_days=40),
        "old_but_rendering": make_job(Status.RENDERING, created_days=40),
    }


EXPIRED = {"old_completed", "old_failed", "old_cancelled", "old_no_finish_time"}


def test_purge_removes_exactly_the_jobs_past_the_limit_with_logs_and_events(jobs):
    kept = {key: job for key, job in jobs.items() if key not in EXPIRED}
    result = retention.purge_jobs()
    assert (result.jobs, result.logs, result.events) == (4, 4, 12)
    assert set(Job.objects.values_list("pk", flat=True)) == {j.pk for j in kept.values()}
    gone = [jobs[key].pk for key in EXPIRED]
    assert not JobLog.objects.filter(job_id__in=gone).exists()
    assert not JobEvent.objects.filter(job_id__in=gone).exists()
    for job in kept.values():
        assert JobLog.objects.filter(job=job).exists()
        assert job.events.count() == 3
    assert retention.purge_jobs().jobs == 0


def test_the_limit_is_the_setting(jobs, settings):
    settings.JOB_RETENTION_DAYS = 31
    assert retention.purge_jobs().jobs == 0
    settings.JOB_RETENTION_DAYS = 2
    assert retention.purge_jobs().jobs == 5  # recent_completed (6.99 days) goes too


def test_outputs_in_dropbox_are_left_alone(db, settings, tmp_path):
    output = tmp_path / "renders" / "spot_1234.mp4"
    output.parent.mkdir()
    output.write_bytes(b"video")
    make_job(Status.COMPLETED, finished_days=10, created_days=10, output_path=str(output))
    assert retention.purge_jobs().jobs == 1
    assert output.read_bytes() == b"video"


def test_purge_jobs_command(jobs, capsys):
    call_command("purge_jobs", "--dry-run")
    assert "Would delete 4 job(s) with 4 log(s) and 12 event(s)" in capsys.readouterr().out
    assert Job.objects.count() == 9
    call_command("purge_jobs")
    assert "Deleted 4 job(s) with 4 log(s) and 12 event(s)" in capsys.readouterr().out
    assert Job.objects.count() == 5
    call_command("purge_jobs", "--days", "0")
    assert Job.objects.filter(status__in=[Status.COMPLETED, Status.FAILED,
                                          Status.CANCELLED]).count() == 0
    assert Job.objects.count() == 3  # the unfinished ones, whatever their age


# --- Temp folders --------------------------------------------------------------------


def _folder(root: Path, job_id, attempt: int, age: float = 3600) -> Path:
    path = root / f"{job_id.hex}-{attempt}"
    (path / "work").mkdir(parents=True)
    (path / "work" / "frame.png").write_bytes(b"x")
    stamp = time.time() - age
    os.utime(path, (stamp, stamp))
    return path


def test_temp_folders_of_finished_renders_are_removed(db, settings, tmp_path):
    root = tmp_path / "render-tmp"
    settings.RENDER_TEMP_DIR = str(root)
    node = RenderNode.objects.create(name="node-a")
    done = Job.objects.create(status=Status.COMPLETED, attempts=1)
    rendering = Job.objects.create(status=Status.RENDERING, attempts=2, node=node)
    requeued = Job.objects.create(status=Status.QUEUED, attempts=1)
    young_done = Job.objects.create(status=Status.CANCELLED, attempts=1)
    folders = {
        "done": _folder(root, done.pk, 1),
        "rendering_now": _folder(root, rendering.pk, 2),
        "rendering_earlier_attempt": _folder(root, rendering.pk, 1),
        "requeued": _folder(root, requeued.pk, 1),
        "deleted_job": _folder(root, uuid.uuid4(), 1),
        "too_young": _folder(root, young_done.pk, 1, age=10),
    }
    unrelated = root / "not-a-render"
    unrelated.mkdir()

    removed = retention.remove_temp_dirs()
    expected = {"done", "rendering_earlier_attempt", "requeued", "deleted_job"}
    assert sorted(removed) == sorted(str(folders[key]) for key in expected)
    for key, path in folders.items():
        assert path.exists() == (key not in expected), key
    assert unrelated.exists()


def test_no_temp_folder_is_fine(db, settings, tmp_path):
    settings.RENDER_TEMP_DIR = str(tmp_path / "missing")
    assert retention.remove_temp_dirs() == []


# --- Who runs it ------------------------------------------------------------------------


def test_housekeeping_runs_retention_at_most_hourly(db):
    calls = []
    keeper = Housekeeper(threading.Event(), chores=[
        ("retention", retention.PURGE_EVERY_SECONDS, lambda: calls.append(1))])
    assert keeper.run_due() == ["retention"]
    assert keeper.run_due() == []
    keeper.last["retention"] -= retention.PURGE_EVERY_SECONDS
    assert keeper.run_due() == ["retention"]
    assert len(calls) == 2


def test_a_failing_chore_does_not_stop_the_others(db, caplog):
    ran = []

    def broken():
        raise RuntimeError("disk on fire")

    keeper = Housekeeper(threading.Event(), chores=[("broken", 60, broken),
                                                    ("fine", 60, lambda: ran.append(1))])
    assert keeper.run_due() == ["fine"]
    assert "housekeeping: broken failed" in caplog.text


def test_maybe_purge_is_throttled(jobs, monkeypatch):
    monkeypatch.setattr(retention, "_last_purge", None)
    assert retention.maybe_purge().jobs == 4
    assert retention.maybe_purge() is None


@pytest.mark.slow
def test_the_render_worker_purges_on_start_and_hourly(farm):
    old = make_job(Status.COMPLETED, finished_days=8, created_days=8)
    fresh = make_job(Status.COMPLETED, finished_days=1, created_days=1)
    farm.start_worker()
    wait_for(lambda: not Job.objects.filter(pk=old.pk).exists(), timeout=30,
             message="the worker did not purge the expired job")
    assert Job.objects.filter(pk=fresh.pk).exists()
    assert not JobEvent.objects.filter(job_id=old.pk).exists()


def test_rejected_jobs_and_their_previews_go_batches_once_empty(db, settings, tmp_path):
    from jobs.models import Batch, BatchRow, JobPreview

    settings.JOB_RETENTION_DAYS = 7
    old = timezone.now() - timedelta(days=9)
    batch = Batch.objects.create(project_path="p", path_key="p", output_name="{row}",
                                 folder="b_1", created_at=old)
    rejected = make_job(Status.REJECTED, finished_days=8, created_days=9)
    waiting = make_job(Status.AWAITING_REVIEW, created_days=40)
    previews = []
    settings.RENDER_OUTPUT_DIR = str(tmp_path)
    for number, job in enumerate((rejected, waiting), start=1):
        video = tmp_path / f"{job.pk.hex}.mp4"
        video.write_bytes(b"preview")
        JobPreview.objects.create(job=job, path=video.name, size=7)
        previews.append(video)
        BatchRow.objects.create(batch=batch, number=number, job=job)
    BatchRow.objects.create(batch=batch, number=3, errors={"photo": ["missing"]})

    first = retention.purge_jobs()

    # Awaiting review is unfinished: it stays, with its preview and its batch.
    assert (first.jobs, first.previews, first.batches) == (1, 1, 0)
    assert [p.exists() for p in previews] == [False, True]
    assert JobPreview.objects.get().job_id == waiting.pk
    assert BatchRow.objects.get(number=1).job is None
    Job.objects.filter(pk=waiting.pk).update(status=Status.CANCELLED,
                                             finished_at=timezone.now() - timedelta(days=8))

    second = retention.purge_jobs()

    assert (second.jobs, second.previews, second.batches) == (1, 1, 1)
    assert not previews[1].exists()
    assert not Batch.objects.exists() and not BatchRow.objects.exists()


def test_a_finished_render_s_folder_is_moved_aside_at_once_and_deleted_later(
        db, settings, tmp_path):
    root = tmp_path / "render-tmp"
    settings.RENDER_TEMP_DIR = str(root)
    job_id = uuid.uuid4()
    folder = _folder(root, job_id, 1, age=0)
    later = []
    with mock.patch("jobs.node.bookkeeping.later",
                    side_effect=lambda fn, *args: later.append((fn, args))):
        retention.discard_temp_dir(folder)
    # Gone from its name at once: another attempt of the job may make it again...
    assert not folder.exists()
    [moved] = (root / retention.DISCARDED).iterdir()
    _folder(root, job_id, 1, age=0)
    # ...and deleting the one moved aside (beside the next render) leaves that alone.
    [(fn, args)] = later
    fn(*args)
    assert not moved.exists() and (root / f"{job_id.hex}-1" / "work" / "frame.png").exists()


def test_folders_moved_aside_by_a_worker_that_stopped_are_removed_by_retention(
        db, settings, tmp_path):
    root = tmp_path / "render-tmp"
    settings.RENDER_TEMP_DIR = str(root)
    old = root / retention.DISCARDED / "old"
    young = root / retention.DISCARDED / "young"
    for path, age in ((old, 3600), (young, 10)):
        (path / "work").mkdir(parents=True)
        stamp = time.time() - age
        os.utime(path, (stamp, stamp))
    retention.remove_temp_dirs()
    assert not old.exists() and young.exists()

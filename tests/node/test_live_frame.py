"""The newest frame of a running image-sequence render reaches the database while it runs."""

from __future__ import annotations

import json

import pytest

from jobs.models import JobFrame, Status
from jobs.node.live_frame import FrameWatcher, frame_number
from tests.helpers import media as mh
from tests.helpers.common import wait_for
from tests.helpers.farm import status_of, submit, use_aerender, wait_status

pytestmark = [pytest.mark.django_db]


def test_frame_numbers_come_from_the_file_name(tmp_path):
    assert frame_number(tmp_path / "result_00042.png") == 42
    assert frame_number(tmp_path / "result.png") == 0


def test_the_frame_being_written_is_skipped_until_the_render_ends(user, tmp_path):
    from jobs.models import Job

    job = Job.objects.create(user=user, status=Status.RENDERING)
    template = {"composition": "main", "outputExt": "png"}
    watcher = FrameWatcher(job, tmp_path, template, interval=60)
    mh.still(tmp_path / "result_00001.png", "red")
    assert not watcher.tick()  # the only frame may still be being written
    mh.still(tmp_path / "result_00002.png", "blue")
    assert watcher.tick() and JobFrame.objects.get(job=job).number == 1
    assert not watcher.tick()  # nothing new
    watcher.stop(last=True)
    frame = JobFrame.objects.get(job=job)
    assert frame.number == 2 and bytes(frame.jpeg)[:2] == b"\xff\xd8"


@pytest.mark.slow
def test_a_running_sequence_shows_its_newest_frame(farm, user):
    use_aerender(farm)
    farm.configure(LIVE_FRAME_SECONDS=0.3)
    farm.start_worker()
    job = submit(farm, user, frames=60, frame_seconds=0.1, width=160, height=90,
                 template={"outputExt": "png"})

    wait_status(job, Status.RENDERING)
    seen = set()

    def moved_on_while_rendering():
        frame = JobFrame.objects.filter(job=job).values_list("number", flat=True).first()
        if frame is not None and status_of(job) == Status.RENDERING:
            seen.add(frame)
        return len(seen) >= 2 or job.status != Status.RENDERING

    wait_for(moved_on_while_rendering, timeout=60, interval=0.1)
    assert len(seen) >= 2, f"frames seen while rendering: {seen}"
    wait_status(job, Status.COMPLETED, Status.FAILED)
    assert job.status == Status.COMPLETED, job.error
    # The last frame stays as the sequence's picture (AE numbers the files by the
    # composition's frames, here from 0).
    assert JobFrame.objects.get(job=job).number == 59


@pytest.mark.slow
def test_a_database_blip_after_a_finished_render_does_not_throw_the_render_away(farm, user):
    # The live frame's last write (the only one: no tick during this render) and
    # the render's end write (its progress, render time and the publishing phase,
    # which also checks the claim) come right after the render; each meets a
    # dropped connection once. Neither may requeue a render that is done.
    use_aerender(farm)
    farm.configure(LIVE_FRAME_SECONDS=3600)
    faults = {'"jobs_jobframe"': 1, '"render_seconds" = ': 1}
    worker = farm.start_worker(hooked=True, TEST_DB_ERRORS=json.dumps(faults))
    job = submit(farm, user, frames=20, frame_seconds=0.02, template={"outputExt": "png"})
    wait_status(job, Status.COMPLETED, Status.FAILED, timeout=90)
    assert job.status == Status.COMPLETED, job.error
    assert job.attempts == 1
    assert not job.events.filter(kind="requeued").exists()
    assert job.log.text().count("=== attempt") == 1
    text = farm.worker_log(worker)
    assert text.count("injected") >= 2, text  # both faults did happen
    assert "database error mid-render" not in text


def test_the_live_frame_thread_outlives_a_database_error(user, tmp_path, monkeypatch):
    from django.db import OperationalError

    from jobs.models import Job

    job = Job.objects.create(user=user, status=Status.RENDERING)
    watcher = FrameWatcher(job, tmp_path, {"composition": "main", "outputExt": "png"},
                           interval=0.02)
    ticks = []

    def tick(finished=False):
        ticks.append(finished)
        if len(ticks) == 1:
            raise OperationalError("server closed the connection unexpectedly")
        return False

    monkeypatch.setattr(watcher, "tick", tick)
    watcher.start()
    try:
        wait_for(lambda: len(ticks) >= 3, timeout=10,
                 message="the live frame thread died with the first database error")
    finally:
        watcher.stop()

"""The newest frame of a running image-sequence render reaches the database while it runs."""

from __future__ import annotations

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
